"""The `Estimate` result type and a vectorised percentile bootstrap for ratio estimators.

Every estimator in this package is a ratio of sums over independent units (rounds, or
clusters of observations such as the positions of one slate):
value = sum(numerator) / sum(denominator). IPS and DR use denominator = 1 per round;
SNIPS uses the weights; replay uses the match indicators. One routine therefore gives
all their intervals: resample units with replacement, recompute the ratio, take the
percentiles. Resampling is vectorised: an int32[c, n] index matrix per chunk of c
replicates, with c chosen so a chunk holds about 4 million indices (16 MiB).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

CHUNK_ELEMENTS = 1 << 22
"""Indices drawn per vectorised chunk of bootstrap replicates (memory bound, 16 MiB as int32)."""


@dataclass(frozen=True)
class Estimate:
    """A policy-value estimate with a bootstrap interval.

    name: the estimator ("ips", "snips", "dr", "replay", ...); value: the point estimate
    (reward units per round, or per slate for slate-level estimators); ci_low, ci_high:
    the percentile bootstrap interval (95% unless asked otherwise); n: the number of
    observations the estimate used (rounds, or matched rounds for replay). value and the
    interval are NaN when no observation contributes (e.g. replay with no match).
    """

    name: str
    value: float
    ci_low: float
    ci_high: float
    n: int

    @property
    def half_width(self) -> float:
        """Half the interval width (NaN when the interval is)."""
        return (self.ci_high - self.ci_low) / 2.0

    def covers(self, truth: float) -> bool:
        """Whether ci_low <= truth <= ci_high."""
        return bool(self.ci_low <= truth <= self.ci_high)


class BootArgs(TypedDict):
    """The bootstrap keyword arguments every estimator takes."""

    rng: np.random.Generator
    n_bootstrap: int
    confidence: float


def check_bootstrap_args(n_bootstrap: int, confidence: float) -> None:
    """Raise ValueError naming `n_bootstrap` or `confidence` when out of range."""
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int | np.integer) or n_bootstrap < 1:
        raise ValueError(f"n_bootstrap: must be an integer >= 1, got {n_bootstrap!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence: must be in (0, 1), got {confidence!r}")


def _ratio(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    out = np.full(numerator.shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def _cluster_sums(
    numerator: FloatArray, denominator: FloatArray, clusters: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    labels = np.asarray(clusters)
    if labels.shape != numerator.shape:
        raise ValueError(f"clusters: must have shape {numerator.shape}, got {labels.shape}")
    _, inverse = np.unique(labels, return_inverse=True)
    inverse = inverse.reshape(-1)
    num = np.bincount(inverse, weights=numerator).astype(np.float64)
    den = np.bincount(inverse, weights=denominator).astype(np.float64)
    return num, den


def bootstrap_ratio(
    numerator: npt.ArrayLike,
    denominator: npt.ArrayLike,
    *,
    rng: np.random.Generator,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    clusters: npt.ArrayLike | None = None,
) -> tuple[float, float, float]:
    """(value, ci_low, ci_high) for value = sum(numerator) / sum(denominator).

    numerator, denominator: float[n], one entry per observation. clusters: optional
    labels[n]; observations sharing a label (e.g. the positions of one slate) are
    resampled together, so within-cluster correlation widens the interval as it should.
    The interval is the percentile bootstrap over `n_bootstrap` resamples of the units
    (observations, or clusters) drawn from `rng`; replicates whose denominator sums to 0
    are dropped. Cost: O(n_bootstrap * units) time, at most 16 MiB of indices at once.
    """
    check_bootstrap_args(n_bootstrap, confidence)
    num = np.asarray(numerator, dtype=np.float64).reshape(-1)
    den = np.asarray(denominator, dtype=np.float64).reshape(-1)
    if num.shape != den.shape:
        raise ValueError(f"denominator: must have shape {num.shape}, got {den.shape}")
    if num.size == 0:
        raise ValueError("numerator: must not be empty")
    if clusters is not None:
        num, den = _cluster_sums(num, den, clusters)
    total = float(den.sum())
    value = float(num.sum() / total) if total != 0 else float("nan")
    units = num.size
    chunk = max(1, min(n_bootstrap, CHUNK_ELEMENTS // units))
    index_type = np.int32 if units < 2**31 else np.int64
    constant = bool(np.all(den == den[0]))  # IPS, DR: every resample has the same denominator
    stats = np.empty(n_bootstrap)
    for start in range(0, n_bootstrap, chunk):
        size = min(chunk, n_bootstrap - start)
        index = rng.integers(0, units, size=(size, units), dtype=index_type)
        totals = np.full(size, den[0] * units) if constant else den[index].sum(axis=1)
        stats[start : start + size] = _ratio(num[index].sum(axis=1), totals)
    finite = stats[np.isfinite(stats)]
    if finite.size == 0:
        return value, float("nan"), float("nan")
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    return value, float(low), float(high)


COUNT_ROWS = 16
"""Bootstrap replicates turned into a count matrix at once in `bootstrap_ratios` (cache-sized)."""


def bootstrap_ratios(
    numerators: npt.ArrayLike,
    denominators: npt.ArrayLike,
    *,
    rng: np.random.Generator,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
) -> list[tuple[float, float, float]]:
    """(value, ci_low, ci_high) per row for k ratio statistics that share one resample.

    numerators, denominators: float[k, n], row j = statistic j's per-unit terms. Each
    replicate draws n units with replacement once (the same indices, chunk for chunk, as
    `bootstrap_ratio` draws from the same `rng`), turns them into per-unit counts
    W int[c, n] and gets every statistic's sums as one product W @ terms — so k statistics
    cost one resample instead of k. With k = 1 the result equals `bootstrap_ratio`'s up
    to float summation order. Replicates with a zero denominator are dropped per row.
    """
    check_bootstrap_args(n_bootstrap, confidence)
    num = np.atleast_2d(np.asarray(numerators, dtype=np.float64))
    den = np.atleast_2d(np.asarray(denominators, dtype=np.float64))
    if num.ndim != 2 or num.shape != den.shape:
        raise ValueError(f"numerators, denominators: must be float[k, n] of one shape, got {num.shape}, {den.shape}")
    k, units = num.shape
    if units == 0:
        raise ValueError("numerators: must not be empty")
    terms = np.concatenate([num, den]).T  # [n, 2k]
    chunk = max(1, min(n_bootstrap, CHUNK_ELEMENTS // units))
    index_type = np.int32 if units < 2**31 else np.int64
    sums = np.empty((n_bootstrap, 2 * k))
    offsets = (np.arange(COUNT_ROWS, dtype=np.int64) * units)[:, None]
    for start in range(0, n_bootstrap, chunk):
        size = min(chunk, n_bootstrap - start)
        index = rng.integers(0, units, size=(size, units), dtype=index_type)
        for row in range(0, size, COUNT_ROWS):
            rows = min(COUNT_ROWS, size - row)
            flat = (index[row : row + rows] + offsets[:rows]).reshape(-1)
            counts = np.bincount(flat, minlength=rows * units).reshape(rows, units).astype(np.float64)
            sums[start + row : start + row + rows] = counts @ terms
    totals = terms.sum(axis=0)
    tail = (1.0 - confidence) / 2.0
    out: list[tuple[float, float, float]] = []
    for j in range(k):
        value = float(totals[j] / totals[k + j]) if totals[k + j] != 0 else float("nan")
        stats = _ratio(sums[:, j], sums[:, k + j])
        finite = stats[np.isfinite(stats)]
        if finite.size == 0:
            out.append((value, float("nan"), float("nan")))
            continue
        low, high = np.quantile(finite, [tail, 1.0 - tail])
        out.append((value, float(low), float(high)))
    return out
