"""Greedy slate re-ranking of every Monte Carlo draw at once: MMR, ILD and DPP (numpy, vectorised).

Input is a utility matrix float64[m, n] (one row per draw, see `utilities`) and unit item
vectors float32[n, d]. Each draw keeps a shortlist of its L best items by utility, then
k greedy steps run for all m draws together:

- MMR (Carbonell & Goldstein 1998): pick argmax_i utility_i - w * max_{j in S} cos(i, j).
- ILD (greedy intra-list diversity): pick argmax_i utility_i - w * mean_{j in S} cos(i, j). The
  slate's ILD is 1 - the mean cosine over all its pairs, and adding i to S adds
  sum_{j in S} cos(i, j) to that pairwise sum, so unlike MMR (which sees only the nearest picked
  item) the penalty is what i costs ILD; the mean (sum / |S|) keeps w on MMR's scale (mean <= max).
  Kept as a running sum of similarities float64[m, L] (one similarity row added per step).
- DPP (greedy MAP, Chen et al. 2018): pick argmax_i utility_i + w * log r_i(S), with r_i(S)
  the residual variance of item i given the picked set S under the kernel cos + 1e-6 I,
  i.e. maximise sum(utility) + w * log det(cos_S) greedily. Updated by an incremental
  Cholesky factor (O(m * L * k) per step).

Position-aware weight: step p (slate position p, 0 = top) uses weight w_p = w * (1 + p) ** power,
and 0 before `from_position` (`step_weights`). With position examination e_p = 1 / (1 + p) ** eta
(the simulator's click model) and power = eta, step p maximises e_p * utility_i minus w times
the diversity term, i.e. the greedy step of "examination-weighted utility - w * diversity":
relevance is traded for variety where users look less. power 0, from 0 = plain MMR / ILD / DPP.

Slate order: the picks are returned in greedy order, or (order="utility") the picked set by
decreasing utility: the same items, hence the same diversity, with the most examination-weighted
utility any order of them has when examination falls with position (rearrangement inequality).

Cost per call: the shortlists (a partial sort per draw) and k steps, each one
similarity row per draw, O(m * L * d), plus O(m * L * k) for DPP's factor update.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import numpy.typing as npt

from online.slates import top_k

IntArray = npt.NDArray[np.int64]
Method = Literal["mmr", "ild", "dpp"]
Order = Literal["greedy", "utility"]
METHODS: tuple[Method, ...] = ("mmr", "ild", "dpp")
FloatArray = npt.NDArray[np.float64]

DPP_JITTER = 1e-6
"""Added to the similarity kernel's diagonal so that it stays positive definite."""


def standardise(scores: FloatArray) -> FloatArray:
    """float64[m, n]: each row minus its mean over the n candidates, over its std (1 when 0)."""
    centred = scores - scores.mean(axis=1, keepdims=True)
    spread = centred.std(axis=1, keepdims=True)
    out: FloatArray = centred / np.where(spread > 0, spread, 1.0)
    return out


def utilities(
    scores: FloatArray, relevance: float, item_adjustment: FloatArray | None, standardised: bool = True
) -> FloatArray:
    """float64[m, n]: relevance * z(scores) + item_adjustment[None, :] (float64[n], the novelty
    penalty and fairness boost, the same in every draw); z = standardise, or with
    `standardised` False each row minus its mean (the scores' own units)."""
    z = standardise(scores) if standardised else scores - scores.mean(axis=1, keepdims=True)
    out = relevance * z
    if item_adjustment is not None:
        out += item_adjustment[None, :]
    return out


def _unit(vectors: npt.NDArray[np.floating]) -> FloatArray:
    """float64[n, d] rows scaled to unit norm (zero rows stay zero)."""
    rows = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    unit: FloatArray = rows / np.where(norms > 0, norms, 1.0)
    return unit


class _Similarity:
    """Cosine similarity of each draw's pick to that draw's shortlist: float64[m, L] per call."""

    def __init__(self, unit: FloatArray, short: IntArray | None) -> None:
        self._unit = unit
        self._short = None if short is None else unit[short]  # float64[m, L, d]

    def to(self, picked: IntArray) -> FloatArray:
        """picked: int64[m] candidate indices (one per draw)."""
        vectors = self._unit[picked]
        if self._short is None:
            out: FloatArray = vectors @ self._unit.T
            return out
        row: FloatArray = np.matmul(self._short, vectors[:, :, None])[:, :, 0]
        return row


def step_weights(weight: float, k: int, position_power: float = 0.0, from_position: int = 0) -> FloatArray:
    """float64[k]: the diversity weight of each greedy step p (slate position, 0 = top):
    weight * (1 + p) ** position_power, and 0 for p < from_position."""
    if not (math.isfinite(weight) and weight >= 0):
        raise ValueError(f"weight: must be finite and >= 0, got {weight}")
    if not (math.isfinite(position_power) and position_power >= 0):
        raise ValueError(f"position_power: must be finite and >= 0, got {position_power}")
    if from_position < 0:
        raise ValueError(f"from_position: must be >= 0, got {from_position}")
    positions = np.arange(k, dtype=np.float64)
    out: FloatArray = np.where(positions >= from_position, weight * (1.0 + positions) ** position_power, 0.0)
    return out


def rerank(
    utility: FloatArray,
    vectors: npt.NDArray[np.floating],
    k: int,
    weight: float,
    method: Method = "mmr",
    shortlist: int = 0,
    position_power: float = 0.0,
    from_position: int = 0,
    order: Order = "greedy",
) -> IntArray:
    """int64[m, k']: per draw, the re-ranked slate as candidate indices (k' = min(k, n)).

    utility: float64[m, n]; vectors: float[n, d] item vectors of the n candidates (any
    norm; zero vectors count as similar to nothing); weight >= 0 (0 = sort by utility);
    shortlist: items per draw considered (0 or >= n = all); position_power >= 0 and
    from_position >= 0: the weight at slate position p is weight * (1 + p) ** position_power
    from position from_position on, 0 before it (`step_weights`; 0, 0 = the same everywhere);
    order: "greedy" = positions in the order picked, "utility" = the picked items by decreasing
    utility (ties keep the greedy order).
    """
    m, n = utility.shape
    if vectors.shape[0] != n:
        raise ValueError(f"vectors: expected {n} rows (one per candidate), got {vectors.shape[0]}")
    if method not in METHODS:
        raise ValueError(f"method: must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
    if order not in ("greedy", "utility"):
        raise ValueError(f"order: must be 'greedy' or 'utility', got {order!r}")
    k = min(k, n)
    weights = step_weights(weight, k, position_power, from_position)
    if not weights.any():
        return top_k(utility, k)
    size = n if shortlist <= 0 else max(k, min(shortlist, n))
    unit = _unit(vectors)
    if size < n:
        short = top_k(utility, size)
        short_utility = np.take_along_axis(utility, short, axis=1)
        similarity = _Similarity(unit, short)
    else:
        short, short_utility, similarity = np.broadcast_to(np.arange(n), (m, n)), utility, _Similarity(unit, None)
    norms = np.einsum("nd,nd->n", unit, unit)[short]  # float64[m, L]: 1, or 0 for zero vectors
    select = {"mmr": _mmr, "ild": _ild, "dpp": _dpp}[method]
    picks = select(short_utility, short, norms, similarity, weights)
    out: IntArray = np.take_along_axis(short, picks, axis=1).astype(np.int64)
    if order == "utility":
        by_utility = np.argsort(-np.take_along_axis(utility, out, axis=1), axis=1, kind="stable")
        out = np.take_along_axis(out, by_utility, axis=1)
    return out


def _mmr(
    utility: FloatArray, short: IntArray, norms: FloatArray, similarity: _Similarity, weights: FloatArray
) -> IntArray:
    """int64[m, k] positions into the shortlists short int64[m, L] chosen by MMR; utility float64[m, L],
    weights float64[k] the diversity weight of each step."""
    m, _ = utility.shape
    k = len(weights)
    draws = np.arange(m)
    picks = np.empty((m, k), dtype=np.int64)
    taken = np.zeros(utility.shape, dtype=bool)
    max_sim = np.full(utility.shape, -np.inf)
    score = utility.copy()
    for step in range(k):
        pick = np.argmax(score, axis=1)
        picks[:, step] = pick
        taken[draws, pick] = True
        np.maximum(max_sim, similarity.to(short[draws, pick]), out=max_sim)
        if step + 1 < k:
            score = utility - weights[step + 1] * max_sim
            score[taken] = -np.inf
    return picks


def _ild(
    utility: FloatArray, short: IntArray, norms: FloatArray, similarity: _Similarity, weights: FloatArray
) -> IntArray:
    """int64[m, k] positions into the shortlists short int64[m, L] chosen by greedy ILD: step p picks
    argmax utility - weights[p] * (mean cosine to the p items already picked); utility float64[m, L]."""
    m, _ = utility.shape
    k = len(weights)
    draws = np.arange(m)
    picks = np.empty((m, k), dtype=np.int64)
    taken = np.zeros(utility.shape, dtype=bool)
    similarity_sum = np.zeros(utility.shape)  # float64[m, L]: sum of cos(i, j) over the picked j
    score = utility.copy()
    for step in range(k):
        pick = np.argmax(score, axis=1)
        picks[:, step] = pick
        taken[draws, pick] = True
        similarity_sum += similarity.to(short[draws, pick])
        if step + 1 < k:
            score = utility - (weights[step + 1] / (step + 1)) * similarity_sum
            score[taken] = -np.inf
    return picks


def _dpp(
    utility: FloatArray, short: IntArray, norms: FloatArray, similarity: _Similarity, weights: FloatArray
) -> IntArray:
    """int64[m, k] positions into the shortlists chosen by greedy DPP MAP; utility float64[m, L],
    weights float64[k] the log-determinant weight of each step."""
    m, size = utility.shape
    k = len(weights)
    draws = np.arange(m)
    picks = np.empty((m, k), dtype=np.int64)
    taken = np.zeros(utility.shape, dtype=bool)
    factor = np.zeros((m, k, size))
    residual = norms + DPP_JITTER
    floor = np.finfo(np.float64).tiny
    for step in range(k):
        score = utility + weights[step] * np.log(np.maximum(residual, floor))
        score[taken] = -np.inf
        pick = np.argmax(score, axis=1)
        picks[:, step] = pick
        taken[draws, pick] = True
        row = similarity.to(short[draws, pick])
        row[draws, pick] += DPP_JITTER
        projected = np.einsum("mtl,mt->ml", factor[:, :step], factor[draws, :step, pick])
        scale = np.sqrt(np.maximum(residual[draws, pick], floor))
        update = (row - projected) / scale[:, None]
        factor[:, step] = update
        residual = residual - update**2
    return picks
