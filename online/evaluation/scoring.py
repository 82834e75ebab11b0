"""A policy's full action distribution for one request, from its Monte Carlo slates.

`Engine.rank` returns only the chosen slate and the propensities of its own items; the
counterfactual driver needs, for every candidate i and position l, the probability that
the policy puts i at l (to weight logged items it would not have chosen itself). That is
`position_probabilities` over the m slates of `Engine.score` (the step `Engine.rank` serves
with): the share of draws whose slate puts i at l.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def position_probabilities(ranked: IntArray, n_candidates: int) -> FloatArray:
    """float64[n, k]: share of the m draws whose top-k puts candidate i at position l.

    ranked: int64[m, k] candidate indices per draw, best first (`top_k` of the draws).
    Each column sums to 1 (every draw fills every position).
    """
    m, k = ranked.shape
    flat = (ranked + n_candidates * np.arange(k, dtype=np.int64)[None, :]).reshape(-1)
    counts = np.bincount(flat, minlength=n_candidates * k).reshape(k, n_candidates).T
    probs: FloatArray = counts / float(m)
    return probs


@dataclass(frozen=True)
class RequestScores:
    """One policy's answer to one request.

    rows: int64[n] catalog rows of the candidates; item_ids: their n ids; slate: int64[k]
    indices into the candidates (draw 0, best first); probs: float64[n, k] position
    probabilities (see `position_probabilities`); mean: float64[n] the policy's posterior
    mean expected reward of each candidate.
    """

    rows: IntArray
    item_ids: list[str]
    slate: IntArray
    probs: FloatArray
    mean: FloatArray
