"""Incremental replay (Li et al. 2011) for streams: a pure `(state, round) -> state` update.

`ReplayAccumulator` is an immutable running count; `update` / `update_batch` return a new
one, so it can live in a stream processor's state store. Its interval is the normal
(CLT) approximation from the running sums, since a stream cannot be resampled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from online.evaluation import _checks
from online.evaluation.bootstrap import Estimate


@dataclass(frozen=True)
class ReplayAccumulator:
    """Running replay totals: rounds seen, rounds matched, sum and sum of squares of the
    matched rewards. Start from `ReplayAccumulator()`."""

    n_seen: int = 0
    n_matched: int = 0
    reward_sum: float = 0.0
    reward_sq_sum: float = 0.0

    def update(self, logged_action: int, chosen_action: int, reward: float) -> ReplayAccumulator:
        """The state after one round: counts it when chosen_action == logged_action."""
        if not math.isfinite(reward):
            raise ValueError(f"reward: must be finite, got {reward!r}")
        if logged_action != chosen_action:
            return replace(self, n_seen=self.n_seen + 1)
        return ReplayAccumulator(
            n_seen=self.n_seen + 1,
            n_matched=self.n_matched + 1,
            reward_sum=self.reward_sum + reward,
            reward_sq_sum=self.reward_sq_sum + reward * reward,
        )

    def update_batch(
        self, logged_actions: npt.ArrayLike, chosen_actions: npt.ArrayLike, rewards: npt.ArrayLike
    ) -> ReplayAccumulator:
        """The state after n rounds: int[n] logged and chosen actions, float[n] rewards."""
        reward = _checks.floats("rewards", rewards, ndim=1)
        logged = _checks.integers("logged_actions", logged_actions, ndim=1, shape=reward.shape)
        chosen = _checks.integers("chosen_actions", chosen_actions, ndim=1, shape=reward.shape)
        matched = reward[logged == chosen]
        return ReplayAccumulator(
            n_seen=self.n_seen + reward.size,
            n_matched=self.n_matched + matched.size,
            reward_sum=self.reward_sum + float(matched.sum()),
            reward_sq_sum=self.reward_sq_sum + float(np.square(matched).sum()),
        )

    @property
    def value(self) -> float:
        """Mean matched reward (NaN before the first match)."""
        return self.reward_sum / self.n_matched if self.n_matched else float("nan")

    @property
    def match_rate(self) -> float:
        """Share of rounds matched (NaN before the first round)."""
        return self.n_matched / self.n_seen if self.n_seen else float("nan")

    def estimate(self, confidence: float = 0.95) -> Estimate:
        """Estimate("replay_online") with a normal-approximation interval (NaN with < 2 matches)."""
        if not 0.0 < confidence < 1.0:
            raise ValueError(f"confidence: must be in (0, 1), got {confidence!r}")
        if self.n_matched < 2:
            return Estimate("replay_online", self.value, float("nan"), float("nan"), self.n_matched)
        mean = self.value
        variance = max(self.reward_sq_sum / self.n_matched - mean * mean, 0.0) * self.n_matched / (self.n_matched - 1)
        half = NormalDist().inv_cdf(0.5 + confidence / 2.0) * math.sqrt(variance / self.n_matched)
        return Estimate("replay_online", mean, mean - half, mean + half, self.n_matched)
