"""Vectorised off-policy evaluation of context-free policies on a columnar log.

The event-level driver (`driver.py`) handles any policy and any log, one round at a
time. For context-free policies (the same action distribution for every round until the
policy learns again) this path processes the log in blocks of `block` rounds between
learning steps, like obp's `batch_size` (block=1: learning after every round). The policy
learns from every logged impression and click (the driver's learn_from="all"), so its
state before each block is a function of the log alone. Per block:

- the position-probability matrix P[action, position] of the block's (frozen) state:
  propensity="exact" (Bernoulli TS only): `beta_rank_probabilities` of the Beta
  posteriors, all blocks in one vectorised call; propensity="monte_carlo" (any
  context-free policy, the reference): the share of n_draws sampled slates, plus one more
  sampled slate per round of the block (its own slate, for replay);
- the reward model predicts q[action, position] for the block, then learns from it.

Per round i (logged action a_i at position l_i): eval_prob = P[a_i, l_i], q_logged =
q[a_i, l_i], q_expected = sum_a P[a, l_i] q[a, l_i], and the replay match "the policy's
own slate puts a_i at l_i". With exact P the match is drawn as uniform_i < P[a_i, l_i]:
the own slate enters replay only through that indicator, whose law given the state is
exactly Bernoulli(P[a_i, l_i]), independently across rounds — the same law as drawing
the whole slate. Estimates are unbiased as in the driver: within a block the policy does
not change, and no round's own reward enters its reward-model prediction.

`estimate_terms` gives replay, IPS, SNIPS and DR with bootstrap intervals; with
shared_bootstrap (default) the four share one resample (`bootstrap_ratios`, one draw of
indices instead of four), otherwise each estimator draws its own (the reference).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

import online.evaluation._checks as _checks
from bench.beta_ranking import beta_rank_probabilities
from online.evaluation.bootstrap import Estimate, bootstrap_ratios
from online.evaluation.estimators import doubly_robust, ips, replay, snips
from online.evaluation.reward_model import PositionCTRModel
from online.evaluation.scoring import position_probabilities
from online.policies.arms import BernoulliThompsonSampling
from online.policies.base import FeedbackBatch, Policy, RankContext
from online.slates import top_k

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Propensity = Literal["auto", "exact", "monte_carlo"]


@dataclass(frozen=True)
class ColumnarLog:
    """n logged rounds, one shown action each: actions int64[n] in [0, n_actions),
    positions int64[n] in [0, n_positions), rewards float64[n], pscores float64[n] in (0, 1]."""

    actions: IntArray
    positions: IntArray
    rewards: FloatArray
    pscores: FloatArray
    n_actions: int
    n_positions: int

    def __post_init__(self) -> None:
        n = self.actions.shape[0]
        for name in ("positions", "rewards", "pscores"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"{name}: expected shape ({n},), got {getattr(self, name).shape}")
        if n and (self.actions.min() < 0 or self.actions.max() >= self.n_actions):
            raise ValueError(f"actions: must be in [0, {self.n_actions})")
        if n and (self.positions.min() < 0 or self.positions.max() >= self.n_positions):
            raise ValueError(f"positions: must be in [0, {self.n_positions})")


@dataclass(frozen=True)
class ColumnarResult:
    """Estimates by name (replay, ips, snips, dr) and the rounds evaluated."""

    estimates: dict[str, Estimate]
    rounds: int


@dataclass(frozen=True)
class RoundTerms:
    """Per logged round (n): eval_probs float64[n] = P[a_i, l_i]; q_logged float64[n] =
    q[a_i, l_i]; q_expected float64[n] = sum_a P[a, l_i] q[a, l_i]; matches bool[n] = the
    policy's own slate put a_i at l_i."""

    eval_probs: FloatArray
    q_logged: FloatArray
    q_expected: FloatArray
    matches: npt.NDArray[np.bool_]


def _use_exact(policy: Policy[Any, Any], propensity: Propensity) -> bool:
    exact_possible = type(policy) is BernoulliThompsonSampling
    if propensity == "exact" and not exact_possible:
        raise ValueError(f"propensity='exact' needs bernoulli_ts, got {policy.name}")
    if propensity not in ("auto", "exact", "monte_carlo"):
        raise ValueError(f"propensity: must be 'auto', 'exact' or 'monte_carlo', got {propensity!r}")
    return exact_possible and propensity != "monte_carlo"


def round_terms(
    log: ColumnarLog,
    policy: Policy[Any, Any],
    item_ids: Sequence[str],
    features: FloatArray,
    *,
    rng: np.random.Generator,
    block: int = 100,
    n_draws: int = 256,
    propensity: Propensity = "auto",
    n_grid: int = 64,
) -> RoundTerms:
    """The per-round terms of every estimator (see the module doc). item_ids: n_actions ids;
    features: float64[n_actions, D] (ignored by context-free policies but passed through).
    propensity: "exact", "monte_carlo", or "auto" (exact for bernoulli_ts). n_draws: Monte
    Carlo draws per block; n_grid: quadrature points of the exact path."""
    if policy.uses_user_state:
        raise ValueError(f"{policy.name} keeps per-user state: use the event-level driver")
    if len(item_ids) != log.n_actions or features.shape[0] != log.n_actions:
        raise ValueError("item_ids and features must have one entry per action")
    if block < 1 or n_draws < 1:
        raise ValueError("block and n_draws must be >= 1")
    bts = policy if _use_exact(policy, propensity) and isinstance(policy, BernoulliThompsonSampling) else None
    n, n_blocks = log.actions.shape[0], -(-log.actions.shape[0] // block)
    state = policy.init_global(features.shape[1])
    context = RankContext("columnar", "offline", list(item_ids), features)
    reward_model = PositionCTRModel()
    all_actions = np.arange(log.n_actions, dtype=np.int64)
    probability = np.empty((n_blocks, log.n_actions, log.n_positions))
    q = np.empty_like(probability)
    posterior = np.empty((2, n_blocks, log.n_actions))
    own_action = np.empty(n, dtype=np.int64)
    for b, start in enumerate(range(0, n, block)):
        stop = min(start + block, n)
        actions, positions, rewards = log.actions[start:stop], log.positions[start:stop], log.rewards[start:stop]
        if bts is not None:
            posterior[0, b], posterior[1, b] = bts.beta_posterior(state, item_ids, bts.params)
        else:
            draws = policy.sample_scores(state, None, context, rng, n_draws + stop - start).draws
            ranked = top_k(draws, log.n_positions)  # int64[m + B, L]
            probability[b] = position_probabilities(ranked[:n_draws], log.n_actions)
            own_action[start:stop] = ranked[n_draws:][np.arange(stop - start), positions]
        q[b] = reward_model.predict(all_actions, log.n_positions)
        reward_model.update(actions, positions, rewards)
        state = _learn(policy, state, item_ids, actions, positions, rewards, features)
    if bts is not None:
        probability = beta_rank_probabilities(posterior[0], posterior[1], log.n_positions, n_grid=n_grid)
    of_round = np.arange(n) // block
    eval_probs = probability[of_round, log.actions, log.positions]
    expected = np.einsum("bal,bal->bl", probability, q)  # [n_blocks, L]
    matches = rng.random(n) < eval_probs if bts is not None else own_action == log.actions
    return RoundTerms(eval_probs, q[of_round, log.actions, log.positions], expected[of_round, log.positions], matches)


def estimate_terms(
    log: ColumnarLog,
    terms: RoundTerms,
    *,
    rng: np.random.Generator,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    shared_bootstrap: bool = True,
) -> dict[str, Estimate]:
    """Replay, IPS, SNIPS and DR (`online.evaluation.estimators` definitions, no clipping)
    from per-round terms; one shared resample for all four, or one each (the reference)."""
    rewards, pscores = log.rewards, log.pscores
    if not shared_bootstrap:
        chosen = np.where(terms.matches, log.actions, -1 - log.actions)
        return {
            "replay": replay(rewards, log.actions, chosen, rng=rng, n_bootstrap=n_bootstrap, confidence=confidence,
                             interval="percentile"),  # as the shared resample computes them
            "ips": ips(rewards, pscores, terms.eval_probs, rng=rng, n_bootstrap=n_bootstrap, confidence=confidence,
                       interval="percentile"),
            "snips": snips(rewards, pscores, terms.eval_probs, rng=rng, n_bootstrap=n_bootstrap,
                           confidence=confidence, interval="percentile"),
            "dr": doubly_robust(rewards, pscores, terms.eval_probs, terms.q_logged, terms.q_expected, rng=rng,
                                n_bootstrap=n_bootstrap, confidence=confidence, interval="percentile"),
        }
    _checks.propensities("pscores", _checks.floats("pscores", pscores, ndim=1, shape=rewards.shape))
    _checks.probabilities("eval_probs", _checks.floats("eval_probs", terms.eval_probs, ndim=1, shape=rewards.shape))
    weight = terms.eval_probs / pscores
    match = terms.matches.astype(np.float64)
    ones = np.ones_like(rewards)
    numerators = [match * rewards, weight * rewards, weight * rewards,
                  terms.q_expected + weight * (rewards - terms.q_logged)]
    denominators = [match, ones, weight, ones]
    results = bootstrap_ratios(np.stack(numerators), np.stack(denominators), rng=rng, n_bootstrap=n_bootstrap,
                               confidence=confidence)
    counts = [int(match.sum())] + [rewards.size] * 3
    return {name: Estimate(name, value, low, high, count)
            for name, (value, low, high), count in zip(("replay", "ips", "snips", "dr"), results, counts, strict=True)}


def evaluate_context_free(
    log: ColumnarLog,
    policy: Policy[Any, Any],
    item_ids: Sequence[str],
    features: FloatArray,
    *,
    rng: np.random.Generator,
    block: int = 100,
    n_draws: int = 256,
    n_bootstrap: int = 1000,
    propensity: Propensity = "auto",
    shared_bootstrap: bool = True,
) -> ColumnarResult:
    """Evaluate `policy` on `log`: `round_terms`, then `estimate_terms` (see the module doc).
    propensity="monte_carlo" with shared_bootstrap=False is the reference computation."""
    terms = round_terms(log, policy, item_ids, features, rng=rng, block=block, n_draws=n_draws,
                        propensity=propensity)
    estimates = estimate_terms(log, terms, rng=rng, n_bootstrap=n_bootstrap, shared_bootstrap=shared_bootstrap)
    return ColumnarResult(estimates, log.actions.shape[0])


def _learn(
    policy: Policy[Any, Any], state: Any, item_ids: Sequence[str], actions: IntArray, positions: IntArray,
    rewards: FloatArray, features: FloatArray,
) -> Any:
    """The policy's state after the block's impressions (and clicks, as reward rows)."""
    clicked = np.flatnonzero(rewards > 0)
    rows = np.concatenate([np.arange(len(actions)), clicked])
    m = len(rows)
    exposures = np.concatenate([np.ones(len(actions)), np.zeros(len(clicked))])
    row_rewards = np.concatenate([np.zeros(len(actions)), rewards[clicked]])
    ids = [item_ids[a] for a in actions[rows].tolist()]
    batch = FeedbackBatch(
        ("columnar",), np.zeros(m, dtype=np.int64), tuple(ids), tuple(f"b{r}" for r in rows.tolist()),
        ("offline",) * m, positions[rows], exposures, row_rewards, features[actions[rows]],
        np.zeros(m),
    )
    new_state, _ = policy.learn(state, {}, batch)
    return new_state
