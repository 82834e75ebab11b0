"""A policy's full action distribution for one request, from its Monte Carlo slates.

`Engine.rank` returns only the chosen slate and the propensities of its own items; the
counterfactual driver needs, for every candidate i and position l, the probability that
the policy puts i at l (to weight logged items it would not have chosen itself), and the
prefix and joint probabilities of the logged slate (RIPS, SIPS). Both come from the m slates
of `Engine.score` (the step `Engine.rank` serves with), mixed with the support mix's uniform
ranking as served (`online.propensities`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from online.propensities import SlatePropensities, slate_propensities, uniform_prefix
from online.propensities import position_matrix as _position_matrix

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def position_probabilities(ranked: IntArray, n_candidates: int) -> FloatArray:
    """float64[n, k]: share of the m draws whose top-k puts candidate i at position l.

    ranked: int64[m, k] candidate indices per draw, best first (`top_k` of the draws).
    Each column sums to 1 (every draw fills every position).
    """
    return _position_matrix(ranked, n_candidates)


@dataclass(frozen=True)
class RequestScores:
    """One policy's answer to one request.

    rows: int64[n] catalog rows of the candidates; item_ids: their n ids; slate: int64[k]
    indices into the candidates (the slate it would serve, best first); probs: float64[n, k]
    position probabilities (support mix included); mean: float64[n] the policy's posterior
    mean expected reward of each candidate; ranked: int64[m, k] its m Monte Carlo slates;
    epsilon: its support mix; exact: the probabilities are a uniformly random ranking's,
    exactly (ranked then holds one slate only).
    """

    rows: IntArray
    item_ids: Sequence[str]
    slate: IntArray
    probs: FloatArray
    mean: FloatArray
    ranked: IntArray | None = None
    epsilon: float = 0.0
    exact: bool = False

    def slate_probabilities(self, slate: IntArray) -> SlatePropensities:
        """The marginal and prefix probabilities that this policy serves `slate` int64[L]
        (candidate indices, -1 for an item it cannot rank): positions beyond its own k,
        or from an item it cannot rank onwards, have prefix probability 0."""
        n, k = self.probs.shape
        length = slate.shape[0]
        head = slate[: min(length, k)]
        inside = head >= 0
        if self.exact or self.ranked is None:
            prefix = np.where(np.logical_and.accumulate(inside), uniform_prefix(n, head.shape[0]), 0.0)
            marginal = np.where(inside, 1.0 / n, 0.0)
        else:
            found = slate_propensities(self.ranked, head, n, self.epsilon)
            marginal, prefix = found.marginal, found.prefix
        pad = np.zeros(length - head.shape[0])
        return SlatePropensities(np.concatenate([marginal, pad]), np.concatenate([prefix, pad]))
