"""Delayed-feedback join: impressions become labelled examples once their label is known.

An exposure of item i in request q waits for a click on (q, i):
- a click within `window_s` seconds of the exposure labels it 1 at once;
- when event time (the watermark: the latest time seen) passes exposure time + window,
  it is labelled 0;
- a click that arrives before its exposure is held for `window_s` and labels the exposure
  1 as soon as it arrives (events may come out of order across topics);
- a click after its exposure was already labelled 0 is counted in `late_clicks` and
  ignored: the window defines the label, as in production CTR pipelines. Choose the
  window longer than the typical click delay (the default is 30 minutes).
Event time, not wall-clock time, drives everything, so a replay gives the same labels.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np

from online.policies.base import FeedbackBatch, FloatArray


@dataclass(frozen=True)
class LabelledExample:
    """One exposure with its decided label (1.0 clicked, 0.0 not) and its features."""

    user_id: str
    item_id: str
    scenario: str
    position: int
    features: FloatArray
    label: float
    time_s: float


@dataclass
class _Pending:
    user_id: str
    scenario: str
    position: int
    features: FloatArray
    time_s: float


@dataclass
class DelayedJoin:
    """Mutable join state; `consume(batch)` returns examples whose label got decided."""

    window_s: float = 1800.0
    watermark_s: float = float("-inf")
    pending: dict[tuple[str, str], _Pending] = field(default_factory=dict)
    early_clicks: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    late_clicks: int = 0
    orphan_clicks: int = 0
    deadlines: list[tuple[float, tuple[str, str]]] = field(default_factory=list, repr=False)
    """A min-heap of (exposure time, key) over the pending exposures (entries of
    exposures no longer pending are skipped when popped), so `expire` costs what it labels, not a
    scan of every pending exposure. Derived: rebuilt from `pending` when decoded."""

    def __post_init__(self) -> None:
        if self.pending and not self.deadlines:
            self.deadlines = [(record.time_s, key) for key, record in self.pending.items()]
            heapq.heapify(self.deadlines)

    def _wait(self, key: tuple[str, str], record: _Pending) -> None:
        self.pending[key] = record
        heapq.heappush(self.deadlines, (record.time_s, key))

    def consume(self, batch: FeedbackBatch) -> list[LabelledExample]:
        """Fold a batch in log order; return newly labelled examples (positives first as
        they happen, then the negatives whose window closed)."""
        out: list[LabelledExample] = []
        user_ids = batch.user_ids
        for row in range(len(batch)):
            key = (batch.request_ids[row], batch.item_ids[row])
            time_s = float(batch.times_s[row])
            self.watermark_s = max(self.watermark_s, time_s)
            if batch.exposures[row] > 0:
                record = _Pending(
                    user_ids[row], batch.scenarios[row], int(batch.positions[row]),
                    batch.features[row].copy(), time_s,
                )
                early = self.early_clicks.pop(key, None)
                if early is not None:
                    out.append(self._example(key, record, min(1.0, early[1])))
                else:
                    self._wait(key, record)
            elif batch.rewards[row] > 0:
                waiting = self.pending.pop(key, None)
                if waiting is not None:
                    out.append(self._example(key, waiting, min(1.0, float(batch.rewards[row]))))
                elif key in self.early_clicks:
                    continue  # a second click on the same shown item adds nothing
                else:
                    self.early_clicks[key] = (time_s, float(batch.rewards[row]))
        out.extend(self.expire())
        return out

    def expire(self) -> list[LabelledExample]:
        """Label 0 every exposure whose window closed before the watermark."""
        horizon = self.watermark_s - self.window_s
        examples = []
        deadlines, pending = self.deadlines, self.pending
        while deadlines and deadlines[0][0] < horizon:
            time_s, key = heapq.heappop(deadlines)
            record = pending.get(key)
            if record is not None and record.time_s == time_s:
                examples.append(self._example(key, pending.pop(key), 0.0))
        stale = [key for key, (time_s, _) in self.early_clicks.items() if time_s < horizon]
        for key in stale:
            del self.early_clicks[key]
        self.orphan_clicks += len(stale)
        return examples

    @staticmethod
    def _example(key: tuple[str, str], record: _Pending, label: float) -> LabelledExample:
        return LabelledExample(
            record.user_id, key[1], record.scenario, record.position, record.features,
            label, record.time_s,
        )

    def copy(self) -> DelayedJoin:
        return DelayedJoin(
            self.window_s, self.watermark_s, dict(self.pending), dict(self.early_clicks),
            self.late_clicks, self.orphan_clicks, list(self.deadlines),
        )

    def to_columns(self) -> tuple[dict[str, object], dict[str, FloatArray]]:
        """(JSON-able metadata, arrays) for the state codec; see `from_columns`."""
        keys = list(self.pending)
        records = [self.pending[key] for key in keys]
        dim = records[0].features.shape[0] if records else 0
        meta: dict[str, object] = {
            "window_s": self.window_s,
            "watermark_s": self.watermark_s if np.isfinite(self.watermark_s) else None,
            "keys": [list(key) for key in keys],
            "users": [r.user_id for r in records],
            "scenarios": [r.scenario for r in records],
            "early": [[*key, t, r] for key, (t, r) in self.early_clicks.items()],
            "late": self.late_clicks,
            "orphan": self.orphan_clicks,
        }
        arrays = {
            "positions": np.array([r.position for r in records], dtype=np.float64),
            "times": np.array([r.time_s for r in records], dtype=np.float64),
            "features": np.array([r.features for r in records], dtype=np.float64).reshape(len(records), dim),
        }
        return meta, arrays

    @staticmethod
    def from_columns(meta: dict[str, object], arrays: dict[str, FloatArray]) -> DelayedJoin:
        keys = meta["keys"]
        users = meta["users"]
        scenarios = meta["scenarios"]
        early = meta["early"]
        assert isinstance(keys, list) and isinstance(users, list)
        assert isinstance(scenarios, list) and isinstance(early, list)
        join = DelayedJoin(float(meta["window_s"]))  # type: ignore[arg-type]
        watermark = meta["watermark_s"]
        join.watermark_s = float("-inf") if watermark is None else float(watermark)  # type: ignore[arg-type]
        for row, key in enumerate(keys):
            join.pending[(key[0], key[1])] = _Pending(
                users[row], scenarios[row], int(arrays["positions"][row]),
                arrays["features"][row].copy(), float(arrays["times"][row]),
            )
        for request_id, item_id, time_s, reward in early:
            join.early_clicks[(request_id, item_id)] = (float(time_s), float(reward))
        join.late_clicks = int(meta["late"])  # type: ignore[call-overload]
        join.orphan_clicks = int(meta["orphan"])  # type: ignore[call-overload]
        join.__post_init__()  # the deadline heap of the decoded pending exposures
        return join
