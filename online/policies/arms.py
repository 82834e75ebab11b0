"""Non-contextual per-item policies over shared exposure/reward counts.

`ArmStats` holds, per item id, how often it was shown and the reward it earned; arms are
added on first sight and kept (removed items simply stop being candidates). Policies:
Beta-Bernoulli Thompson sampling, most popular, epsilon-greedy and uniform random.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from online.codec import pack_state, unpack_state
from online.policies.base import FeedbackBatch, FloatArray, IntArray, Policy, RankContext, ScoreDraws


@dataclass(frozen=True)
class ArmStats:
    """ids: n arm ids; exposures, rewards: float64[n] totals per arm."""

    ids: tuple[str, ...] = ()
    exposures: FloatArray = field(default_factory=lambda: np.zeros(0))
    rewards: FloatArray = field(default_factory=lambda: np.zeros(0))
    index: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.index and self.ids:
            self.index.update({arm: row for row, arm in enumerate(self.ids)})

    def lookup(self, item_ids: Sequence[str]) -> tuple[FloatArray, FloatArray]:
        """(exposures, rewards) float64[len(item_ids)]; zeros for unseen arms."""
        rows = np.fromiter((self.index.get(i, -1) for i in item_ids), dtype=np.int64, count=len(item_ids))
        seen = rows >= 0
        exposures, rewards = np.zeros(len(item_ids)), np.zeros(len(item_ids))
        exposures[seen] = self.exposures[rows[seen]]
        rewards[seen] = self.rewards[rows[seen]]
        return exposures, rewards

    def add(self, item_ids: Sequence[str], exposures: FloatArray, rewards: FloatArray) -> ArmStats:
        """New stats with the given per-row increments folded in (arms created as needed)."""
        ids = list(self.ids)
        index = dict(self.index)
        rows: IntArray = np.empty(len(item_ids), dtype=np.int64)
        for position, item_id in enumerate(item_ids):
            row = index.get(item_id)
            if row is None:
                row = index[item_id] = len(ids)
                ids.append(item_id)
            rows[position] = row
        new_exposures = np.zeros(len(ids))
        new_rewards = np.zeros(len(ids))
        new_exposures[: len(self.ids)] = self.exposures
        new_rewards[: len(self.ids)] = self.rewards
        np.add.at(new_exposures, rows, exposures)
        np.add.at(new_rewards, rows, rewards)
        return ArmStats(tuple(ids), new_exposures, new_rewards, index)


def encode_arms(kind: str, stats: ArmStats) -> bytes:
    return pack_state(
        kind, 1, {"ids": list(stats.ids)}, {"exposures": stats.exposures, "rewards": stats.rewards}
    )


def decode_arms(kind: str, blob: bytes) -> ArmStats:
    decoded = unpack_state(blob, kind, max_version=1)
    return ArmStats(
        tuple(decoded.meta["ids"]), decoded.arrays["exposures"], decoded.arrays["rewards"]
    )


def check_arms(stats: ArmStats) -> None:
    if not len(stats.ids) == len(stats.exposures) == len(stats.rewards):
        raise ValueError("arm ids and count arrays differ in length")
    if np.any(stats.exposures < 0) or np.any(stats.rewards < 0):
        raise ValueError("arm counts must be >= 0")


@dataclass(frozen=True)
class BetaParams:
    """Beta(prior_alpha, prior_beta) prior on each item's click probability (> 0)."""

    prior_alpha: float = 1.0
    prior_beta: float = 20.0

    def __post_init__(self) -> None:
        if not (self.prior_alpha > 0 and self.prior_beta > 0):
            raise ValueError(f"Beta prior parameters must be > 0, got {self}")


class _ArmPolicy(Policy[ArmStats, None]):
    """Shared learning and codec for the per-item policies."""

    def init_global(self, feature_dim: int) -> ArmStats:
        return ArmStats()

    def learn(
        self, global_state: ArmStats, user_states: Mapping[str, None], batch: FeedbackBatch
    ) -> tuple[ArmStats, dict[str, None]]:
        return global_state.add(batch.item_ids, batch.exposures, batch.rewards), {}

    def encode_global(self, state: ArmStats) -> bytes:
        return encode_arms(f"{self.name}.arms", state)

    def decode_global(self, blob: bytes) -> ArmStats:
        return decode_arms(f"{self.name}.arms", blob)

    def check_invariants(self, global_state: ArmStats, user_state: None) -> None:
        check_arms(global_state)

    def beta_posterior(
        self, stats: ArmStats, item_ids: Sequence[str], prior: BetaParams
    ) -> tuple[FloatArray, FloatArray]:
        """(alpha, beta) float64[n] > 0 for each item; rewards above exposures are clipped."""
        exposures, rewards = stats.lookup(item_ids)
        alpha = prior.prior_alpha + rewards
        beta = prior.prior_beta + np.maximum(exposures - rewards, 0.0)
        return alpha, beta


class BernoulliThompsonSampling(_ArmPolicy):
    """Per-item Beta-Bernoulli Thompson sampling: score = a draw of the item's CTR."""

    name = "bernoulli_ts"
    params: BetaParams

    def __init__(self, params: BetaParams | None = None) -> None:
        self.params = params or BetaParams()

    def sample_scores(
        self, global_state: ArmStats, user_state: None, context: RankContext,
        rng: np.random.Generator, n_draws: int,
    ) -> ScoreDraws:
        alpha, beta = self.beta_posterior(global_state, context.item_ids, self.params)
        total = alpha + beta
        mean = alpha / total
        std = np.sqrt(alpha * beta / (total**2 * (total + 1)))
        return ScoreDraws(rng.beta(alpha, beta, size=(n_draws, len(alpha))), mean, std)


@dataclass(frozen=True)
class EpsilonGreedyParams:
    """epsilon in [0, 1]: chance a slate is uniformly random; prior smooths CTR estimates."""

    epsilon: float = 0.1
    prior: BetaParams = field(default_factory=BetaParams)

    def __post_init__(self) -> None:
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {self.epsilon}")


class EpsilonGreedy(_ArmPolicy):
    """Greedy on smoothed per-item CTR; with probability epsilon a uniformly random slate."""

    name = "epsilon_greedy"
    params: EpsilonGreedyParams

    def __init__(self, params: EpsilonGreedyParams | None = None) -> None:
        self.params = params or EpsilonGreedyParams()

    def sample_scores(
        self, global_state: ArmStats, user_state: None, context: RankContext,
        rng: np.random.Generator, n_draws: int,
    ) -> ScoreDraws:
        alpha, beta = self.beta_posterior(global_state, context.item_ids, self.params.prior)
        mean = alpha / (alpha + beta)
        n = len(mean)
        # Ties (e.g. all unseen) are broken at random, below any real CTR difference.
        greedy = mean + 1e-9 * rng.random((n_draws, n))
        explore = rng.random(n_draws) < self.params.epsilon
        greedy[explore] = rng.random((int(explore.sum()), n))
        return ScoreDraws(greedy, mean, np.zeros(n))


class MostPopular(_ArmPolicy):
    """Items by total reward (clicks), ties broken at random. No exploration of its own."""

    name = "most_popular"

    def __init__(self) -> None:
        self.params = BetaParams()

    def sample_scores(
        self, global_state: ArmStats, user_state: None, context: RankContext,
        rng: np.random.Generator, n_draws: int,
    ) -> ScoreDraws:
        exposures, rewards = global_state.lookup(context.item_ids)
        ctr = rewards / np.maximum(exposures, 1.0)
        draws = rewards + 0.5 * rng.random((n_draws, len(rewards)))
        return ScoreDraws(draws, ctr, np.zeros(len(rewards)))


class UniformRandom(_ArmPolicy):
    """Uniformly random slates: the logging policy of randomised experiments."""

    name = "uniform_random"

    def __init__(self) -> None:
        self.params = BetaParams()

    def sample_scores(
        self, global_state: ArmStats, user_state: None, context: RankContext,
        rng: np.random.Generator, n_draws: int,
    ) -> ScoreDraws:
        n = len(context.item_ids)
        exposures, rewards = global_state.lookup(context.item_ids)
        ctr = rewards / np.maximum(exposures, 1.0)
        return ScoreDraws(rng.random((n_draws, n)), ctr, np.zeros(n))
