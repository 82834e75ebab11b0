"""A StateStore over a Faust table, with the source offsets each value already contains.

The worker is at-least-once: after a crash it re-reads events whose offsets were not yet
committed, some of which may already be folded into state that reached the changelog.
Every value written here therefore carries, per source topic, the offset of the last event
it includes (`AppliedOffsets`), and the worker skips events at or below it, so a replayed
event never counts twice in any state.

Value layout: b"SSOF" | u8 n | n x (u8 topic index, i64 offset) | inner blob.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Iterable, Iterator, MutableMapping, Sequence

_MAGIC = b"SSOF"
_ENTRY = struct.Struct("<Bq")
_EMPTY_HEADER = _MAGIC + b"\x00"
_TWO_ENTRIES = struct.Struct("<4sBBqBq")

FEEDBACK_TOPICS = ("impressions", "clicks")
"""Topic kinds whose offsets are tracked in state values (index = position here)."""
TOPIC_INDEX = {kind: index for index, kind in enumerate(FEEDBACK_TOPICS)}
AppliedOffsets = dict[int, int]
"""topic index (see `TOPIC_INDEX`) -> offset of the last event folded into a value."""


def wrap(offsets: AppliedOffsets, inner: bytes) -> bytes:
    """Prefix a state blob with the offsets it includes."""
    if not offsets:
        return _EMPTY_HEADER + inner
    if len(offsets) == 2:  # impressions and clicks, the usual case: one pack
        (first, first_offset), (second, second_offset) = sorted(offsets.items())
        return _TWO_ENTRIES.pack(_MAGIC, 2, first, first_offset, second, second_offset) + inner
    entries = b"".join([_ENTRY.pack(topic, offset) for topic, offset in sorted(offsets.items())])
    return b"".join((_MAGIC, bytes((len(offsets),)), entries, inner))


def unwrap(value: bytes) -> tuple[AppliedOffsets, bytes]:
    """(offsets, inner blob) of a value written by `wrap`."""
    if value[:4] != _MAGIC:
        raise ValueError("table value lacks its applied-offsets header")
    count = value[4]
    offsets: AppliedOffsets = {}
    for index in range(count):
        topic, offset = _ENTRY.unpack_from(value, 5 + index * _ENTRY.size)
        offsets[topic] = offset
    return offsets, value[5 + count * _ENTRY.size :]


class TableStore:
    """StateStore over a Faust table (or any bytes -> bytes mapping).

    Reads strip the offsets header and remember it (`offsets_of`); writes attach the
    offsets the worker set with `stage_offsets` for that key (merged with what the key
    already had). The remembered offsets of at most `max_remembered` keys are kept (least
    recently used dropped; a forgotten key's offsets are read again before it is written),
    so memory does not grow with the users a partition has seen.
    """

    def __init__(self, table: MutableMapping[bytes, bytes], max_remembered: int = 100_000) -> None:
        if max_remembered < 1:
            raise ValueError(f"max_remembered must be >= 1, got {max_remembered}")
        self.table = table
        self.max_remembered = max_remembered
        self._known: OrderedDict[str, AppliedOffsets] = OrderedDict()
        self._absent: set[str] = set()
        self._staged: dict[str, AppliedOffsets] = {}

    def _remember(self, key: str, offsets: AppliedOffsets, absent: bool) -> None:
        self._known[key] = offsets
        self._known.move_to_end(key)
        if absent:
            self._absent.add(key)
        else:
            self._absent.discard(key)
        while len(self._known) > self.max_remembered:
            old, _ = self._known.popitem(last=False)
            self._absent.discard(old)

    def offsets_of(self, key: str) -> AppliedOffsets:
        """Offsets already folded into the value under key ({} when absent)."""
        return self.applied_offsets(key) or {}

    def applied_offsets(self, key: str) -> AppliedOffsets | None:
        """Offsets folded into the value under key; None when the key has no value."""
        if key not in self._known:
            self.get(key)
        return None if key in self._absent else self._known.get(key, {})

    def stage_offsets(self, key: str, offsets: AppliedOffsets) -> None:
        """Offsets to record with the next write of key."""
        self._staged.setdefault(key, {}).update(offsets)

    def get(self, key: str) -> bytes | None:
        value = self.table.get(key.encode())
        if value is None:
            self._remember(key, {}, absent=True)
            return None
        offsets, inner = unwrap(bytes(value))
        self._remember(key, offsets, absent=False)
        return inner

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return [self.get(key) for key in keys]

    def put(self, key: str, value: bytes) -> None:
        known = self._known.get(key)
        if known is None:
            self.get(key)  # its offsets were dropped (or never read): merge with what is stored
            known = self._known.get(key, {})
        staged = self._staged.pop(key, None)
        offsets = {**known, **staged} if staged else dict(known)
        self._remember(key, offsets, absent=False)
        self.table[key.encode()] = wrap(offsets, value)

    def put_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        for key, value in items:
            self.put(key, value)

    def delete(self, key: str) -> None:
        """Remove key (on a state table: a tombstone in the changelog)."""
        self._remember(key, {}, absent=True)
        self._staged.pop(key, None)
        if key.encode() in self.table:
            del self.table[key.encode()]

    def tombstone(self, key: str) -> None:
        """Delete key, writing a tombstone to the changelog even when the key holds nothing (a
        forget of an unknown or already forgotten user is acknowledged like any other:
        `slatestream forget --wait` waits for the tombstone)."""
        if key.encode() not in self.table:
            self.table[key.encode()] = b""
        self.delete(key)

    def touch(self, key: str) -> bool:
        """Write key's current value again, unchanged (False when absent).

        After a crash the local store may hold writes whose changelog records were
        never sent; rewriting the value sends it to the changelog again.
        """
        value = self.get(key)
        if value is None:
            return False
        self.put(key, value)
        return True

    def scan_prefix(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        raw = prefix.encode()
        for key in sorted(k for k in self.table if k.startswith(raw)):
            value = self.table.get(key)
            if value is not None:
                yield key.decode(), unwrap(bytes(value))[1]

    def forget_cache(self) -> None:
        """Drop remembered offsets (after a rebalance other workers may have written)."""
        self._known.clear()
        self._absent.clear()
        self._staged.clear()

    def close(self) -> None:
        self.forget_cache()
