"""Forgetting by event time: exponential discounting of sufficient statistics.

With half-life h seconds, a row observed at event time t weighs 2 ** (-(T - t) / h) in sums
held "as of" time T. Sums are kept as of the latest event time they have seen; folding in a
batch whose latest time is T' >= T scales the old sums by 2 ** (-(T' - T) / h) and adds each
row with its own weight relative to T'. The result is sum over rows of 2 ** (-(T' - t) / h)
times the row, whatever the batch split or order, so a replay of the same events gives the
same state (event time, never wall-clock time). h = None: no forgetting (every weight 1).

Forgetting can also be triggered by detected drift (`DriftDetector`): when a policy's reward
rate falls well below its running mean, the old evidence is discounted once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def check_half_life(half_life_s: float | None, owner: str) -> None:
    """Raise ValueError unless half_life_s is None or a finite number > 0."""
    if half_life_s is not None and not (math.isfinite(half_life_s) and half_life_s > 0):
        raise ValueError(f"{owner}.half_life_s must be None (no forgetting) or > 0, got {half_life_s!r}")


def decay_factor(from_s: float, to_s: float, half_life_s: float | None) -> float:
    """Weight at time `to_s` of evidence held as of `from_s`: 2 ** (-(to_s - from_s) / h),
    1.0 without forgetting, before any evidence (from_s = -inf) or when to_s <= from_s."""
    if half_life_s is None or not math.isfinite(from_s) or to_s <= from_s:
        return 1.0
    return float(2.0 ** (-(to_s - from_s) / half_life_s))


def row_weights(times_s: FloatArray, as_of_s: float, half_life_s: float | None) -> FloatArray:
    """float64[m] weight of each row (event times float64[m], seconds) in sums held as of
    `as_of_s` (>= every time): ones without forgetting."""
    if half_life_s is None:
        return np.ones(len(times_s))
    out: FloatArray = np.exp2(-(as_of_s - times_s) / half_life_s)
    return out


def latest(as_of_s: float, times_s: FloatArray) -> float:
    """The later of `as_of_s` and the latest of `times_s` (float64[m], possibly empty)."""
    return max(as_of_s, float(times_s.max())) if len(times_s) else as_of_s


@dataclass(frozen=True)
class DriftDetector:
    """A one-sided Page-Hinkley / CUSUM test for a drop in the reward rate, fed once per batch.

    n: batches since the last alarm; mean: their mean reward rate; score: the CUSUM statistic
    max(0, score + (1 - rate / mean) - tolerance), i.e. the accumulated relative shortfall of a
    batch's rate below the running mean beyond `tolerance`. An alarm (score > threshold, after
    `warmup` batches) resets it. Deterministic for the same batches: a replay that cuts the
    stream into the same batches raises the same alarms.
    """

    n: float = 0.0
    mean: float = 0.0
    score: float = 0.0

    def update(self, rate: float, threshold: float, tolerance: float, warmup: int) -> tuple[DriftDetector, bool]:
        """(the detector after one batch with reward rate `rate` >= 0, whether it alarmed)."""
        n = self.n + 1
        mean = self.mean + (rate - self.mean) / n
        shortfall = 1.0 - rate / mean if mean > 0 else 0.0
        score = max(0.0, self.score + shortfall - tolerance) if n > warmup else 0.0
        if score > threshold:
            return DriftDetector(), True
        return DriftDetector(n, mean, score), False
