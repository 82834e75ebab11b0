"""Sufficient statistics of linear Thompson sampling and their batched sums (codec:
online.policies.linear_codec).

`LinearStats` holds one regression's sums (a user's, or the population's); `PopulationStats`
adds the per-scenario sums that fit the learned scenario offsets (see online.policies.linear_ts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from online.policies.base import FloatArray


@dataclass(frozen=True)
class LinearStats:
    """Sufficient statistics: the Gram matrix (sum of exposure x x^T) kept as its packed
    upper triangle float64[D(D+1)/2], the response float64[D] (sum of reward x), and
    the counts of exposures and of reward mass."""

    gram_upper: FloatArray
    response: FloatArray
    n_exposures: float = 0.0
    reward_total: float = 0.0

    @staticmethod
    def zeros(dim: int) -> LinearStats:
        return LinearStats(np.zeros(dim * (dim + 1) // 2), np.zeros(dim))

    @staticmethod
    def from_gram(gram: FloatArray, response: FloatArray, n_exposures: float = 0.0,
                  reward_total: float = 0.0) -> LinearStats:
        """Pack a full symmetric float64[D, D] Gram matrix."""
        rows, cols = _upper(int(response.shape[0]))
        return LinearStats(np.asarray(gram)[rows, cols].copy(), response, n_exposures, reward_total)

    @property
    def dim(self) -> int:
        return int(self.response.shape[0])

    @property
    def gram(self) -> FloatArray:
        """float64[D, D] the full symmetric Gram matrix."""
        full: FloatArray = self.gram_upper[_symmetric_index(self.dim)]
        return full

    def plus(self, gram_upper: FloatArray, response: FloatArray, n_exposures: float,
             reward_total: float) -> LinearStats:
        """These sums plus an increment (a new value; self is not changed)."""
        return LinearStats(self.gram_upper + gram_upper, self.response + response,
                           self.n_exposures + n_exposures, self.reward_total + reward_total)


@dataclass(frozen=True)
class PopulationStats(LinearStats):
    """The population's sums over every row (the inherited fields), plus `scenarios`: per
    scenario that has a learned offset, the sums over that scenario's rows only. Rows of
    other scenarios are in the pooled sums alone. Treat `scenarios` as read-only."""

    scenarios: Mapping[str, LinearStats] = field(default_factory=dict)

    @staticmethod
    def empty(dim: int) -> PopulationStats:
        return PopulationStats(np.zeros(dim * (dim + 1) // 2), np.zeros(dim))

    @staticmethod
    def of(pooled: LinearStats, scenarios: Mapping[str, LinearStats]) -> PopulationStats:
        return PopulationStats(pooled.gram_upper, pooled.response, pooled.n_exposures,
                               pooled.reward_total, dict(scenarios))


@lru_cache(maxsize=16)
def _upper(dim: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    return np.triu_indices(dim)


@lru_cache(maxsize=16)
def _symmetric_index(dim: int) -> npt.NDArray[np.intp]:
    """int[D, D]: position in the packed upper triangle of each full-matrix entry."""
    index = np.zeros((dim, dim), dtype=np.intp)
    rows, cols = _upper(dim)
    index[rows, cols] = np.arange(len(rows))
    index[cols, rows] = np.arange(len(rows))
    return index


def grouped_sums(
    group: npt.NDArray[np.int64], n_groups: int, x: FloatArray, exposure: FloatArray,
    reward: FloatArray, chunk: int = 512,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Per-group sufficient statistics (`grouped_rows`, its rows split): packed Gram
    triangles float64[G, D(D+1)/2], responses float64[G, D] (views of one array), exposure
    totals and reward totals float64[G]."""
    rows, exposures, rewards = grouped_rows(group, n_groups, x, exposure, reward, chunk)
    packed = rows.shape[1] - x.shape[1]
    return rows[:, :packed], rows[:, packed:], exposures, rewards


def _narrow(group: npt.NDArray[np.int64], n_groups: int) -> npt.NDArray[np.integer]:
    """The group codes as uint16 when they fit (numpy's stable sort of 16-bit integers is a
    radix sort: ~5x faster than its merge sort of int64), else as they are."""
    return group.astype(np.uint16) if n_groups <= 1 << 16 else group


def grouped_sum(group: npt.NDArray[np.integer], n_groups: int, values: FloatArray) -> FloatArray:
    """float64[G, D]: the sum of the rows of values float64[m, D] per group (group: integer
    codes [m] in [0, G), any integer dtype), each group's rows added in row order, as
    `np.add.at` would (one bincount over the flattened rows: ~4x faster than `np.add.at`).
    Cells are computed as intp: 16-bit codes would wrap, uint64 ones turn into floats."""
    dim = values.shape[1]
    cells = (group.astype(np.intp, copy=False)[:, None] * dim + np.arange(dim)).ravel()
    sums = np.bincount(cells, weights=values.ravel(), minlength=n_groups * dim)  # float64 (weights given)
    return sums.astype(np.float64, copy=False).reshape(n_groups, dim)


def grouped_rows(
    group: npt.NDArray[np.int64], n_groups: int, x: FloatArray, exposure: FloatArray,
    reward: FloatArray, chunk: int = 512,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per-group sufficient statistics in a few vectorised calls.

    group: int64[m] in [0, n_groups); x: float64[m, D]; exposure, reward: float64[m].
    Returns the rows float64[G, D(D+1)/2 + D] (per group its packed Gram triangle, then its
    response), exposure totals and reward totals float64[G]. The exposure rows of groups with
    about the same row count w are gathered, by group, into blocks float[c, w, D] (at most 25%
    zero padding; none when the counts are equal, as with slates of one size) and
    multiplied with one batched matmul per block instead of one small matmul per group.
    Reward rows only touch the responses.
    """
    dim = x.shape[1]
    rows, cols = _upper(dim)
    packed = rows * dim + cols
    shown = np.flatnonzero(exposure)
    group_shown = group[shown]
    order = shown[np.argsort(_narrow(group_shown, n_groups), kind="stable")]  # the exposure rows of x, by group
    weights = np.sqrt(exposure[order]) if np.any(exposure[shown] != 1.0) else None
    counts = np.bincount(group_shown, minlength=n_groups)
    starts = np.cumsum(counts) - counts
    by_count = np.argsort(counts, kind="stable")
    by_count = by_count[counts[by_count] > 0]
    sorted_counts = counts[by_count]
    sorted_gram = np.empty((len(by_count), len(rows)))  # the groups in by_count order
    first = 0
    while first < len(by_count):
        last = min(int(np.searchsorted(sorted_counts, sorted_counts[first] * 1.25, side="right")), first + chunk)
        members = by_count[first:last]
        width = int(sorted_counts[last - 1])
        gather = np.minimum(starts[members][:, None] + np.arange(width), len(order) - 1)
        xs = np.take(x, order[gather], axis=0)  # ~1.7x faster than x[order[gather]] for row gathers
        if weights is not None:
            xs *= weights[gather][:, :, None]
        if sorted_counts[first] != width:  # rows past a group's count are zeroed
            xs[np.arange(width)[None, :] >= counts[members][:, None]] = 0.0
        products = np.matmul(xs.transpose(0, 2, 1), xs).reshape(len(members), -1)
        # mode="clip": with the default "raise" numpy buffers `out` (0.25 vs 0.14 ms a block); every index is in range
        np.take(products, packed, axis=1, out=sorted_gram[first:last], mode="clip")
        first = last
    sums = np.zeros((n_groups, len(rows) + dim))
    sums[by_count, : len(rows)] = sorted_gram
    paid = np.flatnonzero(reward)
    sums[:, len(rows) :] = grouped_sum(group[paid], n_groups, x[paid] * reward[paid][:, None])
    totals_e = np.bincount(group, weights=exposure, minlength=n_groups).astype(np.float64)
    totals_r = np.bincount(group, weights=reward, minlength=n_groups).astype(np.float64)
    return sums, totals_e, totals_r


def packed_gram(x: FloatArray, exposure: FloatArray) -> FloatArray:
    """float64[D(D+1)/2] packed upper triangle of sum_i exposure_i x_i x_i^T; x: float64[m, D]."""
    rows, cols = _upper(x.shape[1])
    full: FloatArray = (x.T @ (x * exposure[:, None]))[rows, cols]
    return full


class UserSums(NamedTuple):
    """What `add_user_sums` gives: the U new states, `change` float64[D(D+1)/2 + D] (the total
    change of the sums, Gram triangle then response, to add to the population), and the new
    states stacked: `sums` [U, D(D+1)/2 + D] (float32 when rounded to it, else float64; each
    state holds its row as float64), `n_exposures` and `reward_totals` float64[U] (what an
    encoder of the U states reads, without stacking them again)."""

    states: list[LinearStats]
    change: FloatArray
    sums: npt.NDArray[np.floating]
    n_exposures: FloatArray
    reward_totals: FloatArray


def add_user_sums(
    states: Sequence[LinearStats | None], increments: FloatArray, exposures: FloatArray, rewards: FloatArray,
    float32: bool,
) -> UserSums:
    """Each user's sums plus its batch increment, for U users at once.

    states: the U users' current sums (None: unseen); increments float64[U, D(D+1)/2 + D]
    (per user a packed Gram triangle, then a response: `grouped_rows`; used as scratch space,
    so its values are lost), exposures and rewards float64[U]: the increments.
    Returns the new states, stacked too (`UserSums`). With `float32` every new sum is
    rounded to the nearest float32 value (still held as float64), so a float32 codec stores
    it exactly; the change is then new - old (exact in float64), so the population remains
    the sum of the stored user states and unlearning one stays exact.
    """
    dim = row_dim(increments.shape[1])
    old = stacked_rows(states, dim * (dim + 1) // 2, dim)  # [U, D(D+1)/2 + D], as increments
    if float32:
        sums: npt.NDArray[np.floating] = np.add(increments, old, out=increments).astype(np.float32)
        # what the sums changed by, exact in float64 (old is overwritten, no longer needed)
        change = np.subtract(sums, old, out=old).sum(axis=0)
    else:
        change = increments.sum(axis=0)
        sums = np.add(increments, old, out=old)
    exposures_after = np.array([0.0 if state is None else state.n_exposures for state in states]) + exposures
    rewards_after = np.array([0.0 if state is None else state.reward_total for state in states]) + rewards
    return UserSums(stats_of_rows(sums, exposures_after, rewards_after), change, sums, exposures_after, rewards_after)


def row_dim(width: int) -> int:
    """The D of rows of `width` = D(D+1)/2 + D columns (a packed Gram triangle, then a response)."""
    return int((np.sqrt(8 * width + 9) - 3) / 2)


def stacked_sums(states: Sequence[LinearStats | None], packed: int, dim: int) -> tuple[FloatArray, FloatArray]:
    """(float64[U, D(D+1)/2] Gram triangles, float64[U, D] responses) of U states (zeros for
    None). Concatenating 1-D arrays and reshaping is ~2x faster than np.stack."""
    no_gram, no_response = np.zeros(packed), np.zeros(dim)
    grams = np.concatenate([no_gram if state is None else state.gram_upper for state in states])
    responses = np.concatenate([no_response if state is None else state.response for state in states])
    return grams.reshape(len(states), packed), responses.reshape(len(states), dim)


def stacked_rows(states: Sequence[LinearStats | None], packed: int, dim: int) -> FloatArray:
    """float64[U, D(D+1)/2 + D]: per state its Gram triangle then its response (zeros for None),
    from one concatenation of 2U vectors."""
    zeros = np.zeros(packed), np.zeros(dim)
    parts: list[FloatArray] = []
    for state in states:
        parts += zeros if state is None else (state.gram_upper, state.response)
    return np.concatenate(parts).reshape(len(states), packed + dim)


def stats_of_rows(
    sums: npt.NDArray[np.floating], n_exposures: FloatArray, reward_totals: FloatArray
) -> list[LinearStats]:
    """One LinearStats per row of sums [U, D(D+1)/2 + D] (a packed Gram triangle, then a
    response; any float dtype) with its counts float64[U]. Each state owns a float64 copy of
    its row (one allocation): a state kept in a cache must not keep a batch's array alive."""
    dim = row_dim(sums.shape[1])
    packed = dim * (dim + 1) // 2
    states = []
    for row, exposures, rewards in zip(sums, n_exposures.tolist(), reward_totals.tolist(), strict=True):
        values = row.astype(np.float64)
        states.append(LinearStats(values[:packed], values[packed:], exposures, rewards))
    return states
