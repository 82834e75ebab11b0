"""The exposure windows of an ObjectiveMemory as state blobs, so novelty, fairness and the
"popular in" reasons survive a restart or a rebalance (snapshots every `windows_snapshot_s`).

A snapshot is a head blob plus `parts` chunk blobs, each at most `CHUNK_KEYS` keys of one
window. Keys are item ids (catalog rows differ between processes) or fairness group names.
    head:  meta {"taken": event time s, "parts": int, "bucket_s": float, "n_buckets": int}
    chunk: meta {"taken", "window": "item" | "group" | "scenario", "scenario": str | None,
           "keys": [str, ...], "newest": newest bucket index}, arrays {"buckets": int32[B, n]}
           (counts by ring slot, as ExposureWindow keeps them: 48 B per key at B = 12).
Reading back checks every chunk against the head (same snapshot, same window shape) before
anything is loaded, so a torn or mismatched snapshot leaves the memory empty, never mixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from online.catalog import Catalog
from online.codec import StateCodecError, pack_state, unpack_state
from online.objectives.memory import ExposureWindow, ObjectiveMemory
from online.state import StateStore

HEAD_KIND = "objective_windows_head"
CHUNK_KIND = "objective_windows"
VERSION = 1
CHUNK_KEYS = 8192
"""Keys per chunk: ~0.5 MB at 12 buckets with ids of ~10 bytes, under Kafka's 1 MB default."""


class WindowSnapshotError(ValueError):
    """A stored snapshot that cannot be loaded (torn write, or other window settings)."""


@dataclass(frozen=True)
class _Chunk:
    window: str
    scenario: str | None
    keys: list[str]
    newest: int
    buckets: npt.NDArray[np.int32]


def encode_windows(
    memory: ObjectiveMemory, catalog: Catalog, taken_s: float, chunk_keys: int = CHUNK_KEYS
) -> tuple[bytes, list[bytes]]:
    """(head, chunks): the blobs of a snapshot of `memory`'s exposure windows at event time
    taken_s (seconds since the epoch). Windows that saw no event are left out."""
    names = {code: name for name, code in memory.group_codes.items()}
    windows: list[tuple[str, str | None, ExposureWindow]] = [
        ("item", None, memory.item_exposure), ("group", None, memory.group_exposure)]
    windows += [("scenario", name, window) for name, window in memory.scenario_clicks.items()]
    chunks: list[bytes] = []
    for kind, scenario, window in windows:
        keys, buckets, newest = window.snapshot()
        if newest is None:
            continue
        labels = [names[code] for code in keys.tolist()] if kind == "group" else catalog.ids_of(keys)
        for start in range(0, max(len(labels), 1), chunk_keys):
            meta = {"taken": taken_s, "window": kind, "scenario": scenario,
                    "keys": labels[start : start + chunk_keys], "newest": newest}
            chunks.append(pack_state(CHUNK_KIND, VERSION, meta,
                                     {"buckets": buckets[:, start : start + chunk_keys]}))
    head = {"taken": taken_s, "parts": len(chunks), "bucket_s": memory.item_exposure.bucket_s,
            "n_buckets": memory.item_exposure.n_buckets}
    return pack_state(HEAD_KIND, VERSION, head, {}), chunks


def snapshot_parts(head: bytes) -> tuple[int, float]:
    """(parts, taken_s) of a head blob (StateCodecError when it is not one)."""
    meta = unpack_state(head, HEAD_KIND, VERSION).meta
    return int(meta["parts"]), float(meta["taken"])


def load_windows(memory: ObjectiveMemory, head: bytes, chunks: Sequence[bytes | None], catalog: Catalog) -> int:
    """Load a snapshot into a memory whose windows saw no event; items the catalog no longer
    knows are dropped. Returns the keys loaded. Raises WindowSnapshotError (memory untouched)
    for a torn snapshot or one taken with other bucket settings; StateCodecError for a blob
    that is not a snapshot part."""
    meta = unpack_state(head, HEAD_KIND, VERSION).meta
    window = memory.item_exposure
    if (float(meta["bucket_s"]), int(meta["n_buckets"])) != (window.bucket_s, window.n_buckets):
        raise WindowSnapshotError(f"snapshot buckets of {meta['bucket_s']} s x {meta['n_buckets']}, the settings "
                                  f"give {window.bucket_s} s x {window.n_buckets}")
    if len(chunks) != int(meta["parts"]):
        raise WindowSnapshotError(f"snapshot has {meta['parts']} parts, {len(chunks)} given")
    parsed = [_parse(chunk, meta["taken"], window.n_buckets) for chunk in chunks]
    loaded = 0
    for chunk in parsed:
        if chunk.window == "group":
            keys = np.array([memory.group_code(name) for name in chunk.keys], dtype=np.int64)
            buckets = chunk.buckets
        else:
            rows = np.array([-1 if (row := catalog.row_of(key)) is None else row for key in chunk.keys],
                            dtype=np.int64)
            known = rows >= 0
            keys, buckets = rows[known], chunk.buckets[:, known]
        target = {"item": memory.item_exposure, "group": memory.group_exposure}.get(chunk.window)
        if target is None:
            assert chunk.scenario is not None
            target = memory.scenario_window(chunk.scenario)
        target.load(keys, np.ascontiguousarray(buckets), chunk.newest)
        loaded += keys.size
    return loaded


def _parse(blob: bytes | None, taken: float, n_buckets: int) -> _Chunk:
    if blob is None:
        raise WindowSnapshotError("a snapshot part is missing")
    state = unpack_state(blob, CHUNK_KIND, VERSION)
    meta, buckets = state.meta, state.arrays["buckets"]
    if meta["taken"] != taken:
        raise WindowSnapshotError(f"a part of the snapshot taken at {meta['taken']} under the head of {taken}")
    if meta["window"] not in ("item", "group", "scenario") or buckets.shape != (n_buckets, len(meta["keys"])):
        raise WindowSnapshotError(f"a malformed snapshot part ({meta['window']!r}, buckets {buckets.shape})")
    return _Chunk(meta["window"], meta["scenario"], list(meta["keys"]), int(meta["newest"]),
                  buckets.astype(np.int32, copy=False))


class WindowSnapshots:
    """Where and when an Engine keeps snapshots of its objectives' exposure windows: keys
    "<prefix>/head" and "<prefix>/<part>" in its store, a new snapshot once the event time
    has moved `every_s` seconds past the last (soft state: a restart loses at most that)."""

    def __init__(self, memory: ObjectiveMemory, store: StateStore, prefix: str, every_s: float,
                 chunk_keys: int = CHUNK_KEYS) -> None:
        if every_s <= 0:
            raise ValueError(f"WindowSnapshots: every_s must be > 0, got {every_s}")
        self.memory = memory
        self.store = store
        self.prefix = prefix
        self.every_s = every_s
        self.taken_s = -np.inf
        self.parts = 0
        self.chunk_keys = chunk_keys

    def key(self, part: int | None = None) -> str:
        """The head's key (part None) or a part's."""
        return f"{self.prefix}/head" if part is None else f"{self.prefix}/{part}"

    def restore(self, catalog: Catalog) -> str:
        """Load the stored snapshot into the (empty) windows; says what happened."""
        head = self.store.get(self.key())
        if head is None:
            return "no snapshot stored"
        try:
            parts, taken_s = snapshot_parts(head)
            loaded = load_windows(self.memory, head, self.store.get_many([self.key(p) for p in range(parts)]),
                                  catalog)
        except (WindowSnapshotError, StateCodecError) as error:
            return f"snapshot not loaded, the windows start empty: {error}"
        self.taken_s, self.parts = taken_s, parts
        return f"loaded {loaded} keys of the snapshot taken at {taken_s:.0f} s"

    def take(self, catalog: Catalog, newest_s: float) -> tuple[list[tuple[str, bytes]], list[str]]:
        """When a snapshot is due at event time newest_s: (writes, head last; stale part keys to
        delete after them); else ([], [])."""
        if newest_s < self.taken_s + self.every_s:
            return [], []
        head, chunks = encode_windows(self.memory, catalog, newest_s, self.chunk_keys)
        writes = [(self.key(part), chunk) for part, chunk in enumerate(chunks)] + [(self.key(), head)]
        stale = [self.key(part) for part in range(len(chunks), self.parts)]
        self.taken_s, self.parts = newest_s, len(chunks)
        return writes, stale
