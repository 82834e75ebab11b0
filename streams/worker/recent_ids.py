"""Bounded per-user lists of recent ids with their event times, kept in the partition's state.

The worker keeps two: each user's recent requests ("requests/<user>": what a click is checked
against) and the event ids of each user's recent impressions and clicks ("events/<user>": a
producer's duplicates, sent again with new offsets, are not learned twice). Each holds at most
`capacity` ids per user, in the order they came (a count, not an event-time window: one event
stamped far in the future must not push the others out), written through to the partition's
table (so it is changelogged with the state and follows the partition); decoded lists of the
`max_users` most recently used users stay in memory.

An id is kept as its 64-bit BLAKE2b digest (`id_key`), not as its text: a stored list is
b"RIDS\\x01" | n x u64 digest | n x f64 event time (epoch s), little-endian, 16 bytes an id
whatever the id's length (producers' ids are up to 256 characters: the JSON lists this replaced
took ~30 bytes an id for the bench's "e123456" ids, ~60 for UUIDs and up to ~270 for the longest,
and every one of them went to the changelog at each flush). A new id matches one of the user's
64 digests by chance with probability ~64 / 2^64 (a new event then taken for a duplicate, or a
click for an unknown request accepted); BLAKE2b is a cryptographic hash, so a producer cannot
choose an id to collide with another's. Lists stored as JSON [[id, time], ...] by earlier
versions still read (their ids digested on reading) and are rewritten in the binary form at the
user's next write; a later version of the binary form is refused (StateCodecError).
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections import OrderedDict
from collections.abc import Callable, Iterable
from functools import cache

from online.codec import StateCodecError
from online.state import StateStore

_PREFIX = b"RIDS"
VERSION = 1
MAGIC = _PREFIX + bytes((VERSION,))
"""The first bytes of a stored list in the binary form (a JSON list starts with "[")."""

_ENTRY_BYTES = 16  # a u64 digest and an f64 time

RECENT_REQUESTS = 64
"""Request ids kept per user (what clicks are checked against): a click on a user's older
request is dead-lettered as UnknownRequestError."""
RECENT_EVENTS = 64
"""Impression and click ids kept per user (what a producer's duplicates are checked against)."""


_EMPTY_DIGEST = hashlib.blake2b(digest_size=8)
"""A BLAKE2b state with no input: `id_key` copies it (~0.5 us) instead of building one from
keyword arguments (~0.75 us), the most frequent call on the learning path (one an event)."""


def id_key(identifier: str) -> bytes:
    """The 64-bit BLAKE2b digest (8 bytes) an id is kept and looked up as. Bytes, not an int:
    a stored list holds the very bytes (as a little-endian u64 it held the same), and the
    conversion was ~30 % of this call."""
    digest = _EMPTY_DIGEST.copy()
    digest.update(identifier.encode("utf-8", "surrogatepass"))
    return digest.digest()


@cache
def _layout(count: int) -> struct.Struct:
    """count 8-byte digests then count times (f64, little-endian)."""
    return struct.Struct(f"<{count * '8s'}{count}d")


def encode_ids(known: dict[bytes, float]) -> bytes:
    """The stored value of {digest: event time, epoch s} (oldest first): MAGIC + 16 bytes an id."""
    return MAGIC + _layout(len(known)).pack(*known.keys(), *known.values())


def decode_ids(value: bytes) -> dict[bytes, float]:
    """{digest: event time, epoch s}, oldest first, of a stored value (binary, or an earlier
    version's JSON [[id, time], ...]); StateCodecError (a ValueError) if it is neither, or a
    later version of the binary form than this build reads."""
    if value[:1] == b"[":
        return {id_key(str(i)): float(t) for i, t in json.loads(value)}
    if value.startswith(_PREFIX) and len(value) > len(_PREFIX) and value[len(_PREFIX)] > VERSION:
        raise StateCodecError(f"recent ids of version {value[len(_PREFIX)]}: this build reads version {VERSION} "
                              "(upgrade forward: docs/operations.md, Upgrades)")
    count, rest = divmod(len(value) - len(MAGIC), _ENTRY_BYTES)
    if not value.startswith(MAGIC) or rest:
        raise StateCodecError(f"not a stored list of recent ids ({len(value)} bytes starting {value[:8]!r})")
    fields = _layout(count).unpack_from(value, len(MAGIC))
    return dict(zip(fields[:count], fields[count:], strict=True))


class RecentIds:
    """Recent ids per (partition, user), persisted under "<prefix>/<user id>".

    Args:
        store_of: the state store of a partition.
        prefix: the key prefix ("requests", "events").
        capacity: the most ids kept per user (the oldest dropped first).
        max_users: decoded users kept in memory.
    """

    def __init__(self, store_of: Callable[[int], StateStore], prefix: str, capacity: int,
                 max_users: int = 100_000) -> None:
        self.store_of = store_of
        self.prefix = prefix
        self.capacity = capacity
        self.max_users = max_users
        self._users: OrderedDict[tuple[int, str], dict[bytes, float]] = OrderedDict()

    def key(self, user_id: str) -> str:
        return f"{self.prefix}/{user_id}"

    def of(self, partition: int, user_id: str) -> dict[bytes, float]:
        """The user's ids {`id_key` digest: event time, epoch s}, oldest first (read from the
        store once)."""
        slot = (partition, user_id)
        known = self._users.get(slot)
        if known is None:
            value = self.store_of(partition).get(self.key(user_id))
            known = self._users[slot] = {} if value is None else decode_ids(value)
            if len(self._users) > self.max_users:
                self._users.popitem(last=False)
        else:
            self._users.move_to_end(slot)
        return known

    def time_of(self, partition: int, user_id: str, identifier: str) -> float | None:
        """The event time (epoch s) the user's list holds for an id; None if it is not there."""
        return self.of(partition, user_id).get(id_key(identifier))

    def add(self, partition: int, user_id: str, ids: Iterable[tuple[str, float]]) -> None:
        """Remember ids with their event times (newest last), trim, and write the user's list."""
        self.extend(partition, user_id, self.of(partition, user_id), {id_key(i): t for i, t in ids})

    def extend(self, partition: int, user_id: str, known: dict[bytes, float], new: dict[bytes, float]) -> None:
        """`add` for a caller that holds the user's list already (`known`, what `of` returned
        for this partition and user): add `new` {`id_key` digest: event time, epoch s} (newest
        last) to it, trim, and write it, without looking the user up again."""
        if not new.keys().isdisjoint(known):  # an id seen again moves to the newest end
            for one in new:
                known.pop(one, None)
        known.update(new)
        for _ in range(len(known) - self.capacity):
            del known[next(iter(known))]
        self.store_of(partition).put(self.key(user_id), encode_ids(known))

    def clear(self) -> None:
        """Forget the decoded lists (after a rebalance other workers may have written them)."""
        self._users.clear()
