"""Vectorised off-policy evaluation of context-free policies on a columnar log.

The event-level driver (`driver.py`) handles any policy and any log, one round at a
time. For context-free policies (the same action distribution for every round until the
policy learns again) this path processes the log in blocks of `block` rounds between
learning steps, like obp's `batch_size`:

    per block: one call of policy.sample_scores with m + B draws over all actions;
      the first m draws give the position-probability matrix P[action, position]
      (Monte Carlo); the next B draws are the policy's own slates for the B rounds
      (replay); the reward model predicts for the block, then learns from it;
      the policy learns from the block's logged impressions and clicks.

Estimates are unbiased as in the driver: within a block the policy does not change, and
no round's own reward enters its reward-model prediction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from online.evaluation.bootstrap import Estimate
from online.evaluation.estimators import doubly_robust, ips, replay, snips
from online.evaluation.reward_model import PositionCTRModel
from online.policies.base import FeedbackBatch, Policy, RankContext
from online.slates import top_k

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


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
) -> ColumnarResult:
    """Evaluate `policy` on `log` (see module doc). item_ids: n_actions ids; features:
    float64[n_actions, D] (ignored by context-free policies but passed through)."""
    if policy.uses_user_state:
        raise ValueError(f"{policy.name} keeps per-user state: use the event-level driver")
    if len(item_ids) != log.n_actions or features.shape[0] != log.n_actions:
        raise ValueError("item_ids and features must have one entry per action")
    if block < 1 or n_draws < 1:
        raise ValueError("block and n_draws must be >= 1")
    n = log.actions.shape[0]
    state = policy.init_global(features.shape[1])
    context = RankContext("columnar", "offline", list(item_ids), features)
    reward_model = PositionCTRModel()
    all_actions = np.arange(log.n_actions, dtype=np.int64)
    eval_probs, q_logged, q_expected = np.empty(n), np.empty(n), np.empty(n)
    own_action = np.empty(n, dtype=np.int64)
    for start in range(0, n, block):
        stop = min(start + block, n)
        actions, positions = log.actions[start:stop], log.positions[start:stop]
        draws = policy.sample_scores(state, None, context, rng, n_draws + stop - start).draws
        ranked = top_k(draws, log.n_positions)  # int64[m + B, L]
        probability = np.stack(
            [np.bincount(ranked[:n_draws, slot], minlength=log.n_actions) for slot in range(log.n_positions)],
            axis=1,
        ) / n_draws  # float64[n_actions, L]
        q = reward_model.predict(all_actions, log.n_positions)  # float64[n_actions, L]
        eval_probs[start:stop] = probability[actions, positions]
        q_logged[start:stop] = q[actions, positions]
        q_expected[start:stop] = (probability * q).sum(axis=0)[positions]
        own_action[start:stop] = ranked[n_draws:][np.arange(stop - start), positions]
        rewards = log.rewards[start:stop]
        reward_model.update(actions, positions, rewards)
        state = _learn(policy, state, item_ids, actions, positions, rewards, features)
    estimates = {
        "replay": replay(log.rewards, log.actions, own_action, rng=rng, n_bootstrap=n_bootstrap),
        "ips": ips(log.rewards, log.pscores, eval_probs, rng=rng, n_bootstrap=n_bootstrap),
        "snips": snips(log.rewards, log.pscores, eval_probs, rng=rng, n_bootstrap=n_bootstrap),
        "dr": doubly_robust(log.rewards, log.pscores, eval_probs, q_logged, q_expected, rng=rng,
                            n_bootstrap=n_bootstrap),
    }
    return ColumnarResult(estimates, n)


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
