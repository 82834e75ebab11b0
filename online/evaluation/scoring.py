"""A policy's full action distribution for one request, from the engine's public pieces.

`Engine.rank` returns only the chosen slate and the propensities of its own items; the
counterfactual driver needs, for every candidate i and position l, the probability that
the policy puts i at l (to weight logged items it would not have chosen itself). That is
`position_probabilities` over the m Monte Carlo draws of `Policy.sample_scores`, built
here from `engine.candidate_rows`, `engine.features.transform`, `policy.sample_scores`
and `online.slates.top_k`, exactly as `Engine.rank` does, without touching the engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from online.engine import Engine
from online.events import RankRequest
from online.policies.base import RankContext, ScoreDraws
from online.slates import top_k

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


def request_draws(engine: Engine, request: RankRequest, n_draws: int) -> tuple[IntArray, list[str], ScoreDraws]:
    """(candidate rows int64[n], their ids, m = n_draws score draws) as `Engine.rank` makes them.

    Raises `online.engine.RankError` when nothing can be ranked.
    """
    user_state = engine.load_user(request.user_id)
    active = engine.catalog.active
    if request.candidates is None and 0 < int(active.sum()) <= engine.config.retrieval_size:
        rows = np.flatnonzero(active).astype(np.int64)  # what candidate_rows returns, without a user query
    else:
        rows = engine.candidate_rows(request, user_state)
    item_ids = engine.catalog.ids_of(rows)
    features = engine.features.transform(engine.catalog.vectors[rows], request.context)
    context = RankContext(request.user_id, request.scenario, item_ids, features, request.time.timestamp())
    draws = engine.policy.sample_scores(engine.global_state, user_state, context, engine.rng, n_draws)
    return rows, item_ids, draws


def score_request(engine: Engine, request: RankRequest, n_draws: int) -> RequestScores:
    """The slate (draw 0) and full position-probability matrix (all n_draws draws)."""
    rows, item_ids, draws = request_draws(engine, request, n_draws)
    k = min(request.k, len(item_ids))
    ranked = top_k(draws.draws, k)
    return RequestScores(rows, item_ids, ranked[0], position_probabilities(ranked, len(item_ids)), draws.mean)
