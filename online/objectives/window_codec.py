"""The exposure windows of an ObjectiveMemory as state blobs, so novelty, fairness and the
"popular in" reasons survive a restart or a rebalance (snapshots every `windows_snapshot_s`).

A snapshot is a head blob plus `parts` part blobs, each of one window and at most about
`PART_BYTES` (keys JSON-escaped plus 4 bytes per bucket per key). Keys are item ids (catalog
rows differ between processes) or fairness group names.
    head: meta {"serial": int, "nonce": str, "taken": event time s, "parts": int,
          "bucket_s": float, "n_buckets": int, "left_out": keys too large for any part}
    part: meta {"serial", "nonce", "window": "item" | "group" | "scenario", "scenario": str | None,
          "keys": [str, ...], "newest": newest bucket index}, arrays {"buckets": int32[B, n]}
          (counts by ring slot, bucket index % B, as ExposureWindow keeps them).
Reading back checks every part against the head (same serial and nonce, same window shape, one
newest bucket per window, counts >= 0) and fills new windows that replace the memory's only
when all is read, so a torn, malformed or mismatched snapshot leaves the windows as they were.
The random nonce tells apart two snapshots of one serial (two workers that both followed the
same head, one of them fenced out by a rebalance); a key whose own size exceeds a part's budget
(a fairness group name of ~400 KB) is left out and counted in the head.
"""

from __future__ import annotations

import json
import secrets
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from online.catalog import Catalog
from online.codec import StateCodecError, pack_state, unpack_state
from online.objectives.memory import ExposureWindow, ObjectiveMemory
from online.state import StateStore

HEAD_KIND = "objective_windows_head"
PART_KIND = "objective_windows"
VERSION = 1
PART_BYTES = 400_000
"""Budget of one part: under half of Kafka's default 1 MB message and the worker's 1 MB
producer batch, whatever the id lengths and bucket count."""


class WindowSnapshotError(ValueError):
    """A stored snapshot that cannot be loaded (torn write, malformed, other window settings)."""


@dataclass(frozen=True)
class _Part:
    window: str
    scenario: str | None
    keys: list[str]
    newest: int
    buckets: npt.NDArray[np.int32]


def _key_bytes(key: str) -> int:
    """Bytes `key` takes in a part's JSON key list (quotes, comma and escapes included)."""
    if key.isascii() and key.isprintable() and '"' not in key and "\\" not in key:
        return len(key) + 3
    return len(json.dumps(key)) + 1


def _part_bounds(costs: npt.NDArray[np.int64], part_bytes: int) -> list[tuple[int, int]]:
    """[start, end) ranges of keys of costs int64[n] (bytes each), greedily as many per part as
    fit in part_bytes (every key must fit on its own)."""
    if not costs.size:
        return [(0, 0)]
    ends = np.cumsum(costs)
    bounds: list[tuple[int, int]] = []
    start = 0
    while start < costs.size:
        used = ends[start - 1] if start else 0
        end = max(int(np.searchsorted(ends, used + part_bytes, side="right")), start + 1)
        bounds.append((start, end))
        start = end
    return bounds


def encode_windows(
    memory: ObjectiveMemory, catalog: Catalog, taken_s: float, serial: int = 0, part_bytes: int = PART_BYTES
) -> tuple[bytes, list[bytes]]:
    """(head, parts): the blobs of a snapshot of `memory`'s exposure windows at event time
    taken_s (seconds since the epoch); `serial` tells it from the snapshot it replaces.
    Windows that saw no event are left out, and keys too large for a part on their own."""
    names = {code: name for name, code in memory.group_codes.items()}
    windows: list[tuple[str, str | None, ExposureWindow]] = [
        ("item", None, memory.item_exposure), ("group", None, memory.group_exposure)]
    windows += [("scenario", name, window) for name, window in memory.scenario_clicks.items()]
    parts: list[bytes] = []
    nonce = secrets.token_hex(8)
    left_out = 0
    for kind, scenario, window in windows:
        keys, buckets, newest = window.snapshot()
        if newest is None:
            continue
        labels = [names[code] for code in keys.tolist()] if kind == "group" else catalog.ids_of(keys)
        costs = np.array([_key_bytes(label) for label in labels], dtype=np.int64) + 4 * window.n_buckets
        fits = costs <= part_bytes
        if not fits.all():
            left_out += int((~fits).sum())
            labels = [label for label, ok in zip(labels, fits.tolist(), strict=True) if ok]
            buckets, costs = buckets[:, fits], costs[fits]
        for start, end in _part_bounds(costs, part_bytes):
            meta = {"serial": serial, "nonce": nonce, "window": kind, "scenario": scenario,
                    "keys": labels[start:end], "newest": newest}
            parts.append(pack_state(PART_KIND, VERSION, meta, {"buckets": buckets[:, start:end]}))
    head = {"serial": serial, "nonce": nonce, "taken": taken_s, "parts": len(parts),
            "bucket_s": memory.item_exposure.bucket_s, "n_buckets": memory.item_exposure.n_buckets,
            "left_out": left_out}
    return pack_state(HEAD_KIND, VERSION, head, {}), parts


def _head(head: bytes) -> tuple[int, float, int, dict[str, Any]]:
    """(parts, taken_s, serial, meta) of a head blob (WindowSnapshotError when it is not one)."""
    try:
        meta = unpack_state(head, HEAD_KIND, VERSION).meta
        return int(meta["parts"]), float(meta["taken"]), int(meta["serial"]), meta
    except (StateCodecError, KeyError, TypeError, ValueError) as error:
        raise WindowSnapshotError(f"not a window snapshot head: {error!r}") from error


def snapshot_parts(head: bytes) -> tuple[int, float, int]:
    """(parts, taken_s, serial) of a head blob (WindowSnapshotError when it is not one)."""
    return _head(head)[:3]


def load_windows(
    memory: ObjectiveMemory, head: bytes, parts: Sequence[bytes | None], catalog: Catalog
) -> tuple[int, int]:
    """Replace `memory`'s windows with a snapshot's; items the catalog does not know are
    dropped. Returns (keys loaded, item keys dropped). Raises WindowSnapshotError, the windows
    untouched, for a torn or malformed snapshot or one taken with other bucket settings."""
    n_parts, _, serial, meta = _head(head)
    shape = (memory.item_exposure.bucket_s, memory.item_exposure.n_buckets)
    if (meta.get("bucket_s"), meta.get("n_buckets")) != shape:
        raise WindowSnapshotError(f"snapshot buckets of {meta.get('bucket_s')} s x {meta.get('n_buckets')}, the "
                                  f"settings give {shape[0]} s x {shape[1]}")
    if len(parts) != n_parts:
        raise WindowSnapshotError(f"snapshot has {n_parts} parts, {len(parts)} given")
    parsed = [_parse(part, (serial, meta.get("nonce")), shape[1]) for part in parts]
    settings = memory.settings
    fresh = {"item": ExposureWindow(settings.exposure_window_s, settings.window_buckets),
             "group": ExposureWindow(settings.exposure_window_s, settings.window_buckets)}
    scenarios: OrderedDict[str, ExposureWindow] = OrderedDict()
    loaded = dropped = 0
    for part in parsed:
        if part.window == "group":
            keys, buckets = np.array([memory.group_code(name) for name in part.keys], dtype=np.int64), part.buckets
        else:
            rows = np.array([-1 if (row := catalog.row_of(key)) is None else row for key in part.keys],
                            dtype=np.int64)
            keys, buckets = rows[rows >= 0], part.buckets[:, rows >= 0]
            dropped += int((rows < 0).sum())
        if part.scenario is None:
            target = fresh[part.window]
        else:
            target = scenarios.setdefault(
                part.scenario, ExposureWindow(settings.exposure_window_s, settings.window_buckets))
        try:
            target.load(keys, np.ascontiguousarray(buckets), part.newest)
        except ValueError as error:  # parts of one window with two newest buckets
            raise WindowSnapshotError(f"a malformed snapshot part: {error}") from error
        loaded += keys.size
    memory.item_exposure, memory.group_exposure = fresh["item"], fresh["group"]
    memory.scenario_clicks = scenarios
    return loaded, dropped


def _parse(blob: bytes | None, snapshot: tuple[int, object], n_buckets: int) -> _Part:
    if blob is None:
        raise WindowSnapshotError("a snapshot part is missing")
    try:
        state = unpack_state(blob, PART_KIND, VERSION)
        meta, buckets = state.meta, state.arrays["buckets"]
        part = _Part(str(meta["window"]), meta["scenario"], [str(key) for key in meta["keys"]], int(meta["newest"]),
                     np.asarray(buckets, dtype=np.int32))
        part_snapshot = (int(meta["serial"]), meta.get("nonce"))
    except (StateCodecError, KeyError, TypeError, ValueError) as error:
        raise WindowSnapshotError(f"a malformed snapshot part: {error!r}") from error
    if part_snapshot != snapshot:
        raise WindowSnapshotError(f"a part of snapshot {part_snapshot} under the head of snapshot {snapshot}")
    scenario_ok = isinstance(part.scenario, str) if part.window == "scenario" else part.scenario is None
    if part.window not in ("item", "group", "scenario") or not scenario_ok:
        raise WindowSnapshotError(f"a malformed snapshot part (window {part.window!r}, scenario {part.scenario!r})")
    if (part.buckets.shape != (n_buckets, len(part.keys)) or len(set(part.keys)) != len(part.keys)
            or (part.buckets.size and part.buckets.min() < 0)):
        raise WindowSnapshotError(f"a malformed snapshot part (buckets {part.buckets.shape}, "
                                  f"{len(part.keys)} keys)")
    return part


class WindowSnapshots:
    """Where and when an Engine keeps snapshots of its objectives' exposure windows: keys
    "<prefix>/head" and "<prefix>/<part>" in its store, a new snapshot once the event time
    has moved `every_s` seconds past the last (soft state: a restart loses at most that)."""

    def __init__(self, memory: ObjectiveMemory, store: StateStore, prefix: str, every_s: float,
                 part_bytes: int = PART_BYTES) -> None:
        if every_s <= 0:
            raise ValueError(f"WindowSnapshots: every_s must be > 0, got {every_s}")
        self.memory = memory
        self.store = store
        self.prefix = prefix
        self.every_s = every_s
        self.part_bytes = part_bytes
        self.taken_s = -np.inf
        self.newest_s = -np.inf
        self.parts = 0
        self.serial = 0
        self.loaded = False
        self.dirty = False

    def key(self, part: int | None = None) -> str:
        """The head's key (part None) or a part's."""
        return f"{self.prefix}/head" if part is None else f"{self.prefix}/{part}"

    def restore(self, catalog: Catalog) -> str:
        """Load the stored snapshot into the windows (once, before any event: call it when the
        catalog holds the items); says what happened."""
        self.loaded = True
        head = self.store.get(self.key())
        if head is None:
            return "no snapshot stored"
        try:
            # the parts to replace or delete and the serial to follow, loaded or not
            self.parts, taken_s, self.serial = snapshot_parts(head)
            parts = self.store.get_many([self.key(part) for part in range(self.parts)])
            loaded, dropped = load_windows(self.memory, head, parts, catalog)
        except WindowSnapshotError as error:
            return f"snapshot not loaded, the windows start empty: {error}"
        self.taken_s = self.newest_s = taken_s
        unknown = f" ({dropped} items the catalog does not hold dropped)" if dropped else ""
        return f"loaded {loaded} keys of the snapshot taken at {taken_s:.0f} s{unknown}"

    def observed(self, catalog: Catalog, newest_s: float) -> tuple[list[tuple[str, bytes]], list[str]]:
        """After a batch of events up to event time newest_s: a snapshot when one is due."""
        self.newest_s = max(self.newest_s, newest_s)
        self.dirty = True
        return self.take(catalog) if self.newest_s >= self.taken_s + self.every_s else ([], [])

    def take(self, catalog: Catalog) -> tuple[list[tuple[str, bytes]], list[str]]:
        """A snapshot now if events came since the last: (writes, head last; stale part keys to
        delete after them), else ([], [])."""
        if not self.dirty:
            return [], []
        self.serial += 1
        head, parts = encode_windows(self.memory, catalog, self.newest_s, self.serial, self.part_bytes)
        writes = [(self.key(part), blob) for part, blob in enumerate(parts)] + [(self.key(), head)]
        stale = [self.key(part) for part in range(len(parts), self.parts)]
        self.taken_s, self.parts, self.dirty = self.newest_s, len(parts), False
        return writes, stale
