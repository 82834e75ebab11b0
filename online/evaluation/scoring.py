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

from online.engine import Engine
from online.events import RankRequest
from online.propensities import SlatePropensities, serve, slate_propensities, uniform_prefix
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


def score_request(engine: Engine, request: RankRequest, *, exact: bool = False,
                  cache: dict[bytes, tuple[FloatArray, IntArray]] | None = None) -> RequestScores:
    """A policy's answer to a request, through `Engine.score` (the serving step): the slate it
    would serve (support mix included) and the probabilities of all its draws.

    exact: the policy is uniformly random (exact 1/n probabilities, one draw). cache: for a
    context-free policy whose state has not changed since the cache was last cleared, one Monte
    Carlo matrix per candidate set (keyed by its catalog rows), reused, with only the policy's own
    slate drawn afresh (None: no reuse). The offline driver and the live leaderboard both score
    through here.
    """
    reuse = cache is not None and not exact
    n_draws = 1 if exact or (reuse and cache) else engine.config.n_draws
    scored = engine.score(request, n_draws)
    if n_draws == 1 and reuse and cache is not None and scored.rows.tobytes() not in cache:
        scored = engine.score(request, engine.config.n_draws)  # these candidates are not cached yet
    ranked = scored.ranking.ranked
    n, epsilon = len(scored.item_ids), engine.config.support_epsilon
    if exact:
        probs, draws = np.full((n, ranked.shape[1]), 1.0 / n), ranked
    elif reuse and cache is not None:
        key = scored.rows.tobytes()
        if key not in cache:
            cache[key] = (_position_matrix(ranked, n, epsilon), ranked)
        probs, draws = cache[key]
    else:
        probs, draws = _position_matrix(ranked, n, epsilon), ranked
    slate, _ = serve(ranked, n, 0.0 if exact else epsilon, engine.rng)
    return RequestScores(scored.rows, scored.item_ids, slate, probs, scored.draws.mean, draws, epsilon, exact)
