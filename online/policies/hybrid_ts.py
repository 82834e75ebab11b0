"""Hybrid linear Thompson sampling: a shared text part plus a per-item part learned across users.

Model (rewards r, item feature vectors x in R^D, item i, user u):
    r = x . theta_u + b_i + noise (variance `noise_var`)
    theta_pop ~ N(0, I / pop_prior_precision),  theta_u ~ N(theta_pop, I / user_prior_precision)
    b_i ~ N(0, 1 / item_prior_precision)   independently per item (the precision estimated from
                                           the item sums by default: empirical Bayes)
The text part is linear TS (online.policies.linear_ts): a new item is scored by its text. The
item part b_i is what the text does not say about item i (a good item rises for every user once
a few users have seen it); it starts at 0, so a cold item is ranked by its text alone.

Population fit (exact, from sums): the pooled text sums (G, h) and, per item, its exposures E_i,
rewards R_i and feature sum X_i (over its exposures) give the joint Gaussian posterior of
(theta_pop, b). With c_i = item_prior_precision + E_i / noise_var, the b block is diagonal, so a
Schur complement gives theta_pop's:
    (pop_prior_precision I + G / s2 - sum_i X_i X_i^T / (s2^2 c_i)) theta = h / s2 - sum_i X_i R_i / (s2^2 c_i)
and then b_i = (R_i - X_i . theta) / (s2 c_i) with posterior variance 1 / c_i (s2 = noise_var).
Every sum is a plain sum over rows, so updates commute (impressions and clicks in any order,
late, in any batch split).

User posterior: as linear TS's, with the user's responses net of the item effects b_i known
when each row is learned (a plug-in step, like linear TS's scenario offsets: the per-user state
stays one Gram matrix and one response; two batch orders may differ slightly in it).
Draws: theta ~ N(mu_u, e^2 A_u^-1) and b_i ~ N(b_i, e^2 / c_i) independently (e = exploration).

Forgetting (`half_life_s`, online.policies.forgetting): every sum is discounted by event time
(the population's and the items' as of the latest event learned, a user's as of its latest
learned batch and, when scored, to the request's time), so after tastes change the old evidence
fades; without it (None, the default) nothing is forgotten. Or on detected drift
(`drift_threshold`): each batch's reward rate feeds a CUSUM test for a drop below its running
mean (`forgetting.DriftDetector`); an alarm keeps `drift_keep` of all evidence learned before the
batch (users' sums lazily, through a clock of halvings in the population state).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_solve, cholesky, solve_triangular

from online.policies.base import FeedbackBatch, FloatArray, Policy, RankContext, ScoreDraws
from online.policies.empirical_bayes import item_prior_precision
from online.policies.forgetting import DriftDetector, check_half_life, decay_factor, latest, row_weights
from online.policies.hybrid_stats import (
    HybridGlobal,
    HybridUser,
    decode_global,
    decode_user,
    encode_global,
    encode_user,
)
from online.policies.linear_stats import LinearStats, grouped_sums, packed_gram


@dataclass(frozen=True)
class HybridTSParams:
    """Hyperparameters (all > 0, half_life_s None or > 0).

    As linear TS's (`LinearTSParams`) for the text part; estimate_item_prior: estimate the prior
    precision of an item effect b_i from the item sums at every population fit (empirical Bayes,
    `population_fit`; bench/hybrid_quality.py: regret -17% against linear TS where items differ
    in quality no text carries, -8% with the fixed prior); item_prior_precision: that precision in
    reward units when it is not estimated, and until enough items have been shown to estimate it
    (2,500: prior std 0.02, an item a few points of CTR better or worse than its text says);
    half_life_s: forgetting by event time (None: never forget); drift_threshold: forgetting on
    detected drift (None: off; the CUSUM threshold, in accumulated relative shortfall),
    drift_tolerance: relative drops it ignores per batch, drift_keep: share of the old evidence
    kept at an alarm, drift_warmup: batches before it tests.
    """

    pop_prior_precision: float = 1.0
    user_prior_precision: float = 100.0
    item_prior_precision: float = 2500.0
    noise_var: float = 0.03
    exploration: float = 0.3
    estimate_item_prior: bool = True
    half_life_s: float | None = None
    drift_threshold: float | None = None
    drift_tolerance: float = 0.1
    drift_keep: float = 0.25
    drift_warmup: int = 10

    def __post_init__(self) -> None:
        for name in ("pop_prior_precision", "user_prior_precision", "item_prior_precision", "noise_var",
                     "exploration", "drift_tolerance"):
            if not getattr(self, name) > 0:
                raise ValueError(f"HybridTSParams.{name} must be > 0, got {getattr(self, name)}")
        check_half_life(self.half_life_s, "HybridTSParams")
        if self.drift_threshold is not None and not self.drift_threshold > 0:
            raise ValueError(f"HybridTSParams.drift_threshold must be None (off) or > 0, got {self.drift_threshold}")
        if not 0 < self.drift_keep <= 1 or self.drift_warmup < 0:
            raise ValueError(f"HybridTSParams.drift_keep must be in (0, 1] and drift_warmup >= 0, got {self}")


def user_factor(user: HybridUser, clock: float, to_s: float, half_life_s: float | None) -> float:
    """What a user's sums weigh at time `to_s` and drift clock `clock`: the event-time decay since
    its last update times a halving per drift halving since then."""
    return decay_factor(user.as_of_s, to_s, half_life_s) * float(2.0 ** -(clock - user.clock))


def scaled(stats: LinearStats, factor: float) -> LinearStats:
    """stats times factor (the same object when factor is 1)."""
    if factor == 1.0:
        return stats
    return LinearStats(stats.gram_upper * factor, stats.response * factor, stats.n_exposures * factor,
                       stats.reward_total * factor)


class HybridThompsonSampling(Policy[HybridGlobal, HybridUser]):
    """Linear TS over item text vectors plus a per-item effect learned across users (module doc)."""

    name = "hybrid_ts"
    uses_user_state = True

    def __init__(self, params: HybridTSParams | None = None) -> None:
        self.params = params or HybridTSParams()
        self._population_memo: tuple[HybridGlobal, FloatArray, float] | None = None
        self._posterior_memo: tuple[HybridGlobal, HybridUser | None, float | None, FloatArray, FloatArray] | None = None

    def init_global(self, feature_dim: int) -> HybridGlobal:
        return HybridGlobal.empty(feature_dim)

    def init_user(self, feature_dim: int) -> HybridUser:
        return HybridUser(LinearStats.zeros(feature_dim))

    def population_mean(self, state: HybridGlobal) -> FloatArray:
        """float64[D] posterior mean of theta_pop, jointly with the item effects (module doc)."""
        return self.population_fit(state)[0]

    def population_fit(self, state: HybridGlobal) -> tuple[FloatArray, float]:
        """(theta_pop float64[D], the item prior precision used): the params' item prior, or with
        `estimate_item_prior` the method-of-moments estimate from the item sums given a first fit
        (online.policies.empirical_bayes.item_prior_precision; the params' value while there are
        too few items to estimate from), then the fit with it."""
        if self._population_memo is not None and self._population_memo[0] is state:
            return self._population_memo[1], self._population_memo[2]
        p = self.params
        item_precision = p.item_prior_precision
        theta = self._joint_mean(state, item_precision)
        if p.estimate_item_prior:
            estimate = item_prior_precision(state.items, theta, p.noise_var)
            if estimate is not None:
                item_precision = float(np.clip(estimate, 1.0, 1e8))
                theta = self._joint_mean(state, item_precision)
        self._population_memo = (state, theta, item_precision)
        return theta, item_precision

    def _joint_mean(self, state: HybridGlobal, item_precision: float) -> FloatArray:
        p, pooled, items = self.params, state.pooled, state.items
        s2 = p.noise_var
        precision = pooled.gram / s2 + p.pop_prior_precision * np.eye(state.dim)
        rhs = pooled.response / s2
        if len(items.ids):
            weight = 1.0 / (s2 * s2 * (item_precision + items.exposures / s2))
            precision = precision - items.features.T @ (items.features * weight[:, None])
            rhs = rhs - items.features.T @ (items.rewards * weight)
        theta: FloatArray = np.linalg.solve((precision + precision.T) / 2, rhs)
        return theta

    def item_effects(self, state: HybridGlobal, item_ids: tuple[str, ...] | list[str]) -> tuple[FloatArray, FloatArray]:
        """(posterior mean, posterior variance) float64[n] of b_i for each item (0 and the prior
        variance for an item never shown)."""
        theta, item_precision = self.population_fit(state)
        exposures, rewards, features = state.items.lookup(item_ids)
        scale = self.params.noise_var * item_precision + exposures
        mean: FloatArray = (rewards - features @ theta) / scale
        variance: FloatArray = self.params.noise_var / scale
        return mean, variance

    def posterior(self, state: HybridGlobal, user: HybridUser | None, time_s: float | None = None
                  ) -> tuple[FloatArray, FloatArray]:
        """(mean float64[D] of theta_u, lower Cholesky factor float64[D, D] of its precision), the
        user's sums discounted to `time_s` (None: as of their last update)."""
        memo = self._posterior_memo
        if memo is not None and memo[0] is state and memo[1] is user and memo[2] == time_s:
            return memo[3], memo[4]
        p = self.params
        stats = LinearStats.zeros(state.dim) if user is None else user.stats
        if user is not None:
            stats = scaled(stats, user_factor(user, state.clock, user.as_of_s if time_s is None else time_s,
                                              p.half_life_s))
        precision = stats.gram / p.noise_var + p.user_prior_precision * np.eye(state.dim)
        factor = cholesky(precision, lower=True, check_finite=False)
        rhs = p.user_prior_precision * self.population_mean(state) + stats.response / p.noise_var
        mean: FloatArray = cho_solve((factor, True), rhs, check_finite=False)
        self._posterior_memo = (state, user, time_s, mean, factor)
        return mean, factor

    def user_vector(self, global_state: HybridGlobal, user_state: HybridUser | None,
                    scenario: str | None = None) -> FloatArray:
        return self.posterior(global_state, user_state)[0]

    def sample_scores(self, global_state: HybridGlobal, user_state: HybridUser | None, context: RankContext,
                      rng: np.random.Generator, n_draws: int) -> ScoreDraws:
        x, e = context.features, self.params.exploration
        mean, factor = self.posterior(global_state, user_state, context.time_s)
        effect, variance = self.item_effects(global_state, list(context.item_ids))
        noise = rng.standard_normal((x.shape[1], n_draws))
        thetas = mean[:, None] + e * solve_triangular(factor, noise, lower=True, trans="T", check_finite=False)
        item_noise = rng.standard_normal((n_draws, len(effect)))
        draws = (x @ thetas).T + effect + e * np.sqrt(variance) * item_noise
        whitened = solve_triangular(factor, x.T, lower=True, check_finite=False)
        std = e * np.sqrt(np.einsum("ij,ij->j", whitened, whitened) + variance)
        return ScoreDraws(draws=draws, mean=x @ mean + effect, std=std)

    def learn(self, global_state: HybridGlobal, user_states: Mapping[str, HybridUser | None],
              batch: FeedbackBatch) -> tuple[HybridGlobal, dict[str, HybridUser | None]]:
        if len(batch) == 0:
            return global_state, {}
        half_life = self.params.half_life_s
        as_of = latest(global_state.as_of_s, batch.times_s)
        weight = row_weights(batch.times_s, as_of, half_life)
        x, exposure, reward = batch.features, batch.exposures * weight, batch.rewards * weight
        effect, _ = self.item_effects(global_state, list(batch.item_ids))
        net_reward = reward - exposure * effect
        gram, response, exposures, _ = grouped_sums(batch.user_index, len(batch.users), x, exposure, net_reward)
        rewards = np.bincount(batch.user_index, weights=reward, minlength=len(batch.users)).astype(np.float64)
        detector, clock, alarm_keep = self._drift(global_state, batch)
        keep = decay_factor(global_state.as_of_s, as_of, half_life) * alarm_keep
        old = scaled(global_state.pooled, keep)
        pooled = old.plus(packed_gram(x, exposure), x.T @ reward, float(exposure.sum()), float(reward.sum()))
        items = global_state.items.add(batch.item_ids, exposure, reward, x * exposure[:, None], keep)
        updated: dict[str, HybridUser | None] = {}
        exposure_totals, reward_totals = exposures.tolist(), rewards.tolist()
        for code, user_id in enumerate(batch.users):
            current = user_states.get(user_id)
            stats = LinearStats.zeros(global_state.dim) if current is None else scaled(
                current.stats, user_factor(current, clock, as_of, half_life))
            stats = stats.plus(gram[code], response[code], exposure_totals[code], reward_totals[code])
            updated[user_id] = HybridUser(stats, as_of, clock)
        return HybridGlobal(pooled, items, as_of, clock, detector), updated

    def _drift(self, state: HybridGlobal, batch: FeedbackBatch) -> tuple[DriftDetector, float, float]:
        """(the detector after this batch, the drift clock, the share of old evidence to keep: 1
        unless the batch's reward rate set off an alarm)."""
        p = self.params
        shown = float(batch.exposures.sum())
        if p.drift_threshold is None or shown == 0:
            return state.detector, state.clock, 1.0
        rate = float(batch.rewards.sum()) / shown
        detector, alarm = state.detector.update(rate, p.drift_threshold, p.drift_tolerance, p.drift_warmup)
        if not alarm:
            return detector, state.clock, 1.0
        return detector, state.clock + float(np.log2(1.0 / p.drift_keep)), p.drift_keep

    def encode_global(self, state: HybridGlobal) -> bytes:
        return encode_global(state)

    def decode_global(self, blob: bytes) -> HybridGlobal:
        return decode_global(blob)

    def encode_user(self, state: HybridUser) -> bytes:
        return encode_user(state)

    def decode_user(self, blob: bytes) -> HybridUser:
        return decode_user(blob)

    def check_invariants(self, global_state: HybridGlobal, user_state: HybridUser | None) -> None:
        dim, items = global_state.dim, global_state.items
        checked = [("population", global_state.pooled)] + ([("user", user_state.stats)] if user_state else [])
        for label, stats in checked:
            if stats.dim != dim or stats.gram_upper.shape != (dim * (dim + 1) // 2,):
                raise ValueError(f"{label} sums have the wrong shape for D={dim}")
            if not (np.all(np.isfinite(stats.gram_upper)) and np.all(np.isfinite(stats.response))):
                raise ValueError(f"{label} sums are not finite")
            if np.linalg.eigvalsh(stats.gram).min() < -1e-6 * max(1.0, stats.n_exposures):
                raise ValueError(f"{label} Gram matrix is not positive semi-definite")
        if not len(items.ids) == len(items.exposures) == len(items.rewards) == len(items.features):
            raise ValueError("item ids and item sums differ in length")
        if items.features.shape[1:] != (dim,) or not np.all(np.isfinite(items.features)):
            raise ValueError("item feature sums have the wrong shape or are not finite")
        if np.any(items.exposures < 0) or np.any(items.rewards < 0):
            raise ValueError("item counts must be >= 0")
