"""Non-contextual per-item policies over shared exposure/reward counts.

`ArmStats` (online.policies.arm_table) holds, per item id, how often it was shown and the
reward it earned; arms are added on first sight and kept (removed items simply stop being
candidates). An update costs what it changes, and the state is stored one part per arm so
that a store is written only what changed (`encode_global_parts`). Policies: Beta-Bernoulli
Thompson sampling, most popular, epsilon-greedy and uniform random.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from online.codec import StateCodecError, pack_state, unpack_state
from online.policies.arm_table import ArmStats
from online.policies.base import FeedbackBatch, FloatArray, Policy, RankContext, ScoreDraws


def encode_arms(kind: str, stats: ArmStats) -> bytes:
    """The whole table as one blob (version 1)."""
    return pack_state(
        kind, 1, {"ids": list(stats.ids)}, {"exposures": stats.exposures, "rewards": stats.rewards}
    )


def decode_arms(kind: str, blob: bytes) -> ArmStats:
    decoded = unpack_state(blob, kind, max_version=PARTS_VERSION)
    if decoded.version == PARTS_VERSION:
        raise StateCodecError(f"{kind}: this head names a state stored in parts (read it with decode_arm_parts)")
    return ArmStats(decoded.meta["ids"], decoded.arrays["exposures"], decoded.arrays["rewards"])


PARTS_VERSION = 2
"""A head blob (version 2, no arrays) whose arms are stored one part per arm: the part named
by the item id holds b"\x01" and its two totals as little-endian float64 (17 bytes)."""
_PART = struct.Struct("<Bdd")


def encode_arm_parts(
    kind: str, stats: ArmStats, stored: ArmStats | None
) -> tuple[bytes, list[tuple[str, bytes | None]]]:
    """(head, parts) bringing a store that holds `stored` in parts to `stats`: the arms that
    changed when `stats` was made from `stored` by one update, else every arm."""
    if stored is not None and stats.derived_from == stored.version_id:
        ids, exposures, rewards = stats.changed()
    else:
        ids, exposures, rewards = list(stats.ids), stats.exposures, stats.rewards
    parts: list[tuple[str, bytes | None]] = [(item_id, _PART.pack(1, e, r))
             for item_id, e, r in zip(ids, exposures.tolist(), rewards.tolist(), strict=True)]
    return pack_state(kind, PARTS_VERSION, {"layout": "one part per arm"}, {}), parts


def decode_arm_parts(kind: str, head: bytes | None, parts: Iterable[tuple[str, bytes]]) -> ArmStats:
    """The table from its head and stored parts; a whole (version 1) head is read alone."""
    if head is None:
        return ArmStats()
    if unpack_state(head, kind, max_version=PARTS_VERSION).version != PARTS_VERSION:
        return decode_arms(kind, head)
    ids: list[str] = []
    totals: list[tuple[float, float]] = []
    for item_id, blob in parts:
        if not blob:
            continue  # a deleted part
        if len(blob) != _PART.size or blob[0] != 1:
            raise StateCodecError(f"{kind}: arm {item_id!r} is not a version-1 part of {_PART.size} bytes")
        ids.append(item_id)
        totals.append(_PART.unpack(blob)[1:])
    values = np.array(totals, dtype=np.float64).reshape(len(ids), 2)
    return ArmStats(ids, values[:, 0], values[:, 1])


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

    stores_global_in_parts = True

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

    def encode_global_parts(
        self, state: ArmStats, stored: ArmStats | None
    ) -> tuple[bytes, list[tuple[str, bytes | None]]]:
        return encode_arm_parts(f"{self.name}.arms", state, stored)

    def decode_global_parts(self, head: bytes | None, parts: Iterable[tuple[str, bytes]]) -> ArmStats:
        return decode_arm_parts(f"{self.name}.arms", head, parts)

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
