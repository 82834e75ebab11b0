"""The river CTR policy's state: persistent versions of one live river model and its
delayed-feedback join, so that learning a batch costs what it changes.

A `RiverState` is a version (online.policies.versioned) of a live value: the river
`LogisticRegression` (its weights, intercept and SGD step count) and the `DelayedJoin`.
Learning a batch journals the old value of every weight, pending exposure and early click it
touches, so neither is the model rebuilt from a weight dictionary nor the join copied per
batch. It relies on river's `learn_one(x, y)` changing only the weights of x's keys, the
intercept and the optimizer's step count (tests/online/test_river_state.py checks it on the
installed river: an optimizer with per-weight state, or an L2 penalty applied to every
weight, would fail it and must be journaled here too).

Stored whole (`encode_whole`, version 1) where a store's batches are not atomic, and as
changed parts where they are (`encode_parts`): a head (version 2: intercept, step count, the
join's scalars) and one part per weight ("w<slot>"), pending exposure ("p...", with its
arrival number, so that a restored join labels them in the same order) and early click
("e..."); a part that left the state is deleted (None).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

import numpy as np

from online.codec import StateCodecError, pack_state, unpack_state
from online.policies.delayed_join import DelayedJoin, LabelledExample, _Pending
from online.policies.versioned import Version

JoinKey = tuple[str, str]
_ABSENT: Any = object()
KIND = "river_ctr.model"
PARTS_VERSION = 2
_WEIGHT = struct.Struct("<Bd")
_EARLY = struct.Struct("<Bdd")
_PENDING = struct.Struct("<BqdqI")  # version, arrival, time, position, JSON length


class _Journal(dict[Any, Any]):
    """A dict that records the first old value (or _ABSENT) of every key changed while
    `journal` is set, and in `removed` the keys taken out meanwhile (one set again has moved
    to the end of the dict's order)."""

    journal: dict[Any, Any] | None = None
    removed: set[Any] | None = None

    def _note(self, key: Any, removing: bool) -> None:
        if self.journal is not None:
            if key not in self.journal:
                self.journal[key] = dict.get(self, key, _ABSENT)
            if removing and self.removed is not None and dict.__contains__(self, key):
                self.removed.add(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._note(key, removing=False)
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: Any) -> None:
        self._note(key, removing=True)
        dict.__delitem__(self, key)

    def pop(self, key: Any, *default: Any) -> Any:
        if dict.__contains__(self, key):  # popping an absent key changes nothing
            self._note(key, removing=True)
        return dict.pop(self, key, *default)


@dataclass
class _Live:
    model: Any  # river.linear_model.LogisticRegression
    join: DelayedJoin
    arrivals: dict[JoinKey, int]  # pending key -> its arrival number
    next_arrival: int
    removed: int = 0  # entries taken out of the join's dicts since they were last rebuilt

    def compact(self) -> None:
        """Rebuild the join's dicts once more entries left them than they hold: a dict keeps
        the slots of removed entries, and the join iterates its dicts at every batch (a
        warm-up that labels a million exposures would leave each later batch a scan of a
        million empty slots)."""
        join = self.join
        if self.removed > max(1024, 2 * (len(join.pending) + len(join.early_clicks))):
            join.pending, join.early_clicks = _Journal(join.pending), _Journal(join.early_clicks)
            self.arrivals = dict(self.arrivals)
            self.removed = 0


Scalars = tuple[float, int, float, int, int, int]
"""intercept, SGD steps, join watermark, late clicks, orphan clicks, next arrival number."""


def _scalars(live: _Live) -> Scalars:
    join = live.join
    return (live.model.intercept, live.model.optimizer.n_iterations, join.watermark_s, join.late_clicks,
            join.orphan_clicks, live.next_arrival)


def _restore(mapping: Any, old: dict[Any, Any]) -> dict[Any, Any]:
    """Set every key of `old` back (removing _ABSENT ones); returns the values replaced."""
    redo = {}
    for key, value in old.items():
        redo[key] = mapping[key] if key in mapping else _ABSENT
        if value is not _ABSENT:
            mapping[key] = value
        elif key in mapping:
            del mapping[key]
    return redo


def _number_arrivals(live: _Live, record: _RiverUndo, removed: set[JoinKey]) -> None:
    """Give the exposures that entered the join (or left and entered again) arrival numbers
    in the join's order (they are its last entries) and drop those of the ones that left."""
    arrivals, pending = live.arrivals, live.join.pending
    entered = sum(1 for key, old in record.pending.items() if key in pending and (old is _ABSENT or key in removed))
    for key in reversed(list(islice(reversed(pending), entered))):
        record.arrivals.setdefault(key, arrivals.get(key, _ABSENT))
        arrivals[key] = live.next_arrival
        live.next_arrival += 1
    for key in record.pending:
        if key not in pending and key in arrivals:
            record.arrivals.setdefault(key, arrivals.pop(key))


@dataclass
class _RiverUndo:
    """Old values of what one learning batch changed."""

    weights: dict[int, Any]
    pending: dict[JoinKey, Any]
    early: dict[JoinKey, Any]
    arrivals: dict[JoinKey, Any]
    scalars: Scalars

    def apply(self, live: _Live) -> _RiverUndo:
        join, model = live.join, live.model
        redo = _RiverUndo(_restore(model._weights, self.weights), _restore(join.pending, self.pending),
                          _restore(join.early_clicks, self.early), _restore(live.arrivals, self.arrivals),
                          _scalars(live))
        (model.intercept, model.optimizer.n_iterations, join.watermark_s, join.late_clicks, join.orphan_clicks,
         live.next_arrival) = self.scalars
        if any(old is not _ABSENT for old in self.pending.values()):  # put returning exposures back in line
            arrivals = live.arrivals
            ordered = sorted(join.pending.items(), key=lambda item: arrivals[item[0]])
            dict.clear(join.pending)
            dict.update(join.pending, ordered)
        return redo


class RiverState:
    """One version of the river model and its join (see the module doc). Immutable: read
    `weights`, `model` and `join` without changing them; `learn` makes a new version."""

    __slots__ = ("_changed", "_version")

    def __init__(self, model: Any, join: DelayedJoin) -> None:
        join.pending, join.early_clicks = _Journal(join.pending), _Journal(join.early_clicks)
        self._version = Version(_Live(model, join, {key: n for n, key in enumerate(join.pending)},
                                      len(join.pending)))
        # the keys (weights, pending, early) the batch that made this version changed (None:
        # built from scratch, every part differs); keys only, so no old value is kept alive
        self._changed: tuple[list[int], list[JoinKey], list[JoinKey]] | None = None

    @property
    def model(self) -> Any:
        """The river model at this version (for predictions only)."""
        return self._version.read().model

    @property
    def weights(self) -> Any:
        """hashed feature -> weight (river's VectorDict: get, items, keys, values, len)."""
        return self._version.read().model._weights

    @property
    def intercept(self) -> float:
        return float(self._version.read().model.intercept)

    @property
    def n_iterations(self) -> int:
        return int(self._version.read().model.optimizer.n_iterations)

    @property
    def join(self) -> DelayedJoin:
        """The pending join at this version (read it; `learn` changes it)."""
        return self._version.read().join

    def learn(self, consume: Callable[[DelayedJoin], list[LabelledExample]],
              features: Callable[[LabelledExample], dict[int, float]]) -> RiverState:
        """A new version: `consume(join)` folds a batch into the join and returns the examples
        it labelled; the model takes one SGD step on each (river's learn_one on its hashed
        `features`, label > 0), in order."""
        records: list[_RiverUndo] = []

        def change(live: _Live) -> _RiverUndo:
            record = _RiverUndo({}, {}, {}, {}, _scalars(live))
            join, model = live.join, live.model
            assert isinstance(join.pending, _Journal) and isinstance(join.early_clicks, _Journal)
            removed: set[JoinKey] = set()
            join.pending.journal, join.pending.removed = record.pending, removed
            join.early_clicks.journal = record.early
            try:
                examples = consume(join)
            finally:
                join.pending.journal = join.pending.removed = join.early_clicks.journal = None
            _number_arrivals(live, record, removed)
            live.removed += len(removed) + sum(1 for key in record.early if key not in join.early_clicks)
            live.compact()
            weights, seen = model._weights, record.weights
            for example in examples:
                x = features(example)
                for key in x:
                    if key not in seen:
                        seen[key] = weights[key] if key in weights else _ABSENT
                model.learn_one(x, example.label > 0)
            records.append(record)
            return record

        new = RiverState.__new__(RiverState)
        new._version = self._version.derive(change)
        record = records[0]
        new._changed = (list(record.weights), list(record.pending), list(record.early))
        return new

    def encode_whole(self) -> bytes:
        """The whole state as one blob (version 1)."""
        live = self._version.read()
        weights = live.model._weights
        keys = np.fromiter(weights.keys(), dtype=np.int64, count=len(weights))
        values = np.fromiter(weights.values(), dtype=np.float64, count=len(weights))
        join_meta, join_arrays = live.join.to_columns()
        meta = {"intercept": float(live.model.intercept), "n_iterations": int(live.model.optimizer.n_iterations),
                "join": join_meta}
        arrays = {"keys": keys, "values": values, **{f"join_{k}": v for k, v in join_arrays.items()}}
        return pack_state(KIND, 1, meta, arrays)

    def encode_parts(self, stored: RiverState | None) -> tuple[bytes, list[tuple[str, bytes | None]]]:
        """(head, parts) bringing a store that holds `stored` in parts to this version: what
        the batch that made this version from `stored` changed, else everything."""
        live = self._version.read()
        join, weights = live.join, live.model._weights
        changed = self._changed
        if stored is None or changed is None or self._version.derived_from != stored._version.version_id:
            slots: Iterable[int] = list(weights.keys())
            pending: Iterable[JoinKey] = list(join.pending)
            early: Iterable[JoinKey] = list(join.early_clicks)
        else:
            slots, pending, early = changed
        parts: list[tuple[str, bytes | None]] = [
            (f"w{slot}", _WEIGHT.pack(1, weights[slot]) if slot in weights else None) for slot in slots
        ]
        parts += [(_join_name("p", key), _pending_part(join.pending[key], live.arrivals[key])
                   if key in join.pending else None) for key in pending]
        parts += [(_join_name("e", key), _EARLY.pack(1, *join.early_clicks[key]) if key in join.early_clicks
                   else None) for key in early]
        meta = {"intercept": float(live.model.intercept), "n_iterations": int(live.model.optimizer.n_iterations),
                "join": _join_scalars(join), "next_arrival": live.next_arrival}
        return pack_state(KIND, PARTS_VERSION, meta, {}), parts


def _join_scalars(join: DelayedJoin) -> dict[str, Any]:
    return {"window_s": join.window_s, "watermark_s": join.watermark_s if np.isfinite(join.watermark_s) else None,
            "late": join.late_clicks, "orphan": join.orphan_clicks}


def _join_name(prefix: str, key: JoinKey) -> str:
    """A part name for a (request id, item id) key: prefix, the request id's length, ":", both ids."""
    return f"{prefix}{len(key[0])}:{key[0]}{key[1]}"


def _join_key(name: str) -> JoinKey:
    length, _, rest = name[1:].partition(":")
    return rest[: int(length)], rest[int(length) :]


def _pending_part(record: _Pending, arrival: int) -> bytes:
    text = json.dumps([record.user_id, record.scenario]).encode()
    return (_PENDING.pack(1, arrival, record.time_s, record.position, len(text)) + text
            + record.features.astype("<f8").tobytes())


def _read_pending(name: str, blob: bytes) -> tuple[int, JoinKey, _Pending]:
    version, arrival, time_s, position, length = _PENDING.unpack_from(blob)
    if version != 1 or len(blob) < _PENDING.size + length or (len(blob) - _PENDING.size - length) % 8:
        raise StateCodecError(f"{KIND}: pending part {name!r} is not a version-1 part")
    user_id, scenario = json.loads(blob[_PENDING.size : _PENDING.size + length])
    features = np.frombuffer(blob, dtype="<f8", offset=_PENDING.size + length).astype(np.float64)
    return arrival, _join_key(name), _Pending(user_id, scenario, position, features, time_s)


def decode_whole(blob: bytes, model: Any) -> RiverState:
    """A state from a version-1 blob; `model` is a fresh river model to load it into."""
    decoded = unpack_state(blob, KIND, max_version=PARTS_VERSION)
    if decoded.version == PARTS_VERSION:
        raise StateCodecError(f"{KIND}: this head names a state stored in parts (read it with decode_parts)")
    for key, value in zip(decoded.arrays["keys"].tolist(), decoded.arrays["values"].tolist(), strict=True):
        model._weights[key] = value
    model.intercept = float(decoded.meta["intercept"])
    model.optimizer.n_iterations = int(decoded.meta["n_iterations"])
    join_arrays = {k[5:]: v for k, v in decoded.arrays.items() if k.startswith("join_")}
    return RiverState(model, DelayedJoin.from_columns(decoded.meta["join"], join_arrays))


def decode_parts(head: bytes, parts: Iterator[tuple[str, bytes]], model: Any) -> RiverState:
    """A state from its head and stored parts (empty parts are deleted ones); a version-1
    head is read alone."""
    decoded = unpack_state(head, KIND, max_version=PARTS_VERSION)
    if decoded.version != PARTS_VERSION:
        return decode_whole(head, model)
    scalars = decoded.meta["join"]
    join = DelayedJoin(float(scalars["window_s"]))
    join.watermark_s = float("-inf") if scalars["watermark_s"] is None else float(scalars["watermark_s"])
    join.late_clicks, join.orphan_clicks = int(scalars["late"]), int(scalars["orphan"])
    pending: list[tuple[int, JoinKey, _Pending]] = []
    for name, blob in parts:
        if not blob:
            continue
        if name[0] == "w" and len(blob) == _WEIGHT.size and blob[0] == 1:
            model._weights[int(name[1:])] = _WEIGHT.unpack(blob)[1]
        elif name[0] == "p" and len(blob) >= _PENDING.size:
            pending.append(_read_pending(name, blob))
        elif name[0] == "e" and len(blob) == _EARLY.size and blob[0] == 1:
            join.early_clicks[_join_key(name)] = _EARLY.unpack(blob)[1:]
        else:
            raise StateCodecError(f"{KIND}: part {name!r} is not a version-1 weight, pending or early part")
    for _, key, record in sorted(pending, key=lambda entry: entry[0]):
        join.pending[key] = record
    model.intercept = float(decoded.meta["intercept"])
    model.optimizer.n_iterations = int(decoded.meta["n_iterations"])
    return RiverState(model, join)
