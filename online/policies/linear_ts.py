"""Linear Thompson sampling with per-user posteriors shrunk towards a population posterior,
and a learned offset per scenario shared by every user (a multi-task arrangement).

Model (Bayesian linear regression of reward on features x in R^D):
    population: theta_pop ~ N(0, I / pop_prior_precision)
    scenario s: delta_s   ~ N(0, I / offset_prior_precision)   (only s in `scenario_offsets`)
    user u:     theta_u   ~ N(theta_pop, I / user_prior_precision)   (shrinkage to population)
    reward of u in scenario s:  r = x . (theta_u + delta_s) + noise, variance `noise_var`
(delta_s = 0 for a scenario without an offset). A user's preferences theta_u are one
vector for every scenario, so feedback in one scenario warms the user up in all others;
delta_s carries what differs systematically between scenarios for everybody.

Sufficient statistics are sums, so updates commute: an exposure adds x x^T to the Gram
matrix, a reward adds r * x to the response vector; clicks and impressions may arrive in
either order and late.

Population fit (exact, from sums): the pooled sums over all rows and, per offset scenario,
the sums over that scenario's rows give the joint Gaussian posterior of (theta_pop,
delta_s...); theta_pop's block is solved by a Schur complement, then
    delta_s = (offset_prior_precision I + G_s / noise_var)^-1 (h_s - G_s theta_pop) / noise_var,
i.e. each of theta_pop and delta_s is fitted on the other's residual, at their joint optimum.

User posterior: the user's response accumulates rewards net of the offset, r - x . delta_s,
with delta_s the posterior mean of the population state the row is learned into (a plug-in,
empirical-Bayes step). That keeps the per-user state the same size as without scenarios (one
Gram matrix, one response: 4,776 bytes at D = 33) instead of one set of sums per scenario
per user; the price is that a row's offset is the one known when it is learned, so two
batch orders may differ slightly once offsets are learned (the population fit stays exact).
    A_u = user_prior_precision * I + G_u / noise_var
    mu_u = A_u^-1 (user_prior_precision * theta_pop + h_u / noise_var)
and draws in scenario s are theta ~ delta_s + N(mu_u, exploration^2 * A_u^-1). A new user
is the population. With no offset scenarios (the default) this is exactly the one-scenario
model: theta_pop is the pooled posterior mean and responses are plain reward sums.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.linalg import cho_factor, cho_solve, lapack

from online.policies.base import FeedbackBatch, FloatArray, IntArray, Policy, RankContext, ScoreDraws
from online.policies.linear_codec import decode_stats, decode_users, encode_stats, encode_users
from online.policies.linear_stats import (
    LinearStats,
    PopulationStats,
    UserSums,
    add_user_sums,
    grouped_rows,
    grouped_sums,
    packed_gram,
    stacked_sums,
)


@dataclass(frozen=True)
class LinearTSParams:
    """Hyperparameters: prior precisions, reward noise variance, exploration (all > 0), and
    the scenarios that learn an offset (distinct names; none by default).

    Defaults suit click rewards (CTR of a few percent, so reward variance ~0.03): a user's
    deviation from the population has prior std 0.1 per feature, and Thompson draws are
    scaled by `exploration` (0.3 won over 0.25-1.0 on the simulator, bench/policies_simulator.py).
    A scenario offset has prior std 1/sqrt(offset_prior_precision) ~ 0.3 per feature: ten
    times the prior precision of theta_pop, so what all scenarios share goes to theta_pop.
    `user_state_dtype` "float32" keeps each user's sums rounded to float32 values, stored in
    2,400 bytes at D = 33 ("float64": 4,776 bytes; the learning is float64 either way, the
    population's sums always float64; see online.policies.linear_codec).
    """

    pop_prior_precision: float = 1.0
    user_prior_precision: float = 100.0
    noise_var: float = 0.03
    exploration: float = 0.3
    scenario_offsets: tuple[str, ...] = ()
    offset_prior_precision: float = 10.0
    user_state_dtype: Literal["float32", "float64"] = "float32"

    def __post_init__(self) -> None:
        if self.user_state_dtype not in ("float32", "float64"):
            raise ValueError(f"LinearTSParams.user_state_dtype must be 'float32' or 'float64', "
                             f"got {self.user_state_dtype!r}")
        for name, value in vars(self).items():
            if name not in ("scenario_offsets", "user_state_dtype") and not value > 0:
                raise ValueError(f"LinearTSParams.{name} must be > 0, got {value}")
        offsets = self.scenario_offsets
        if not isinstance(offsets, tuple) or not all(isinstance(s, str) and s for s in offsets):
            raise ValueError(f"LinearTSParams.scenario_offsets must be a tuple of names, got {offsets!r}")
        if len(set(offsets)) != len(offsets):
            raise ValueError(f"LinearTSParams.scenario_offsets has duplicates: {offsets!r}")


class LinearThompsonSampling(Policy[LinearStats, LinearStats]):
    """Per-user linear Thompson sampling over item feature vectors, with learned scenario
    offsets (see module doc). The global state is a PopulationStats (a plain LinearStats is
    read as one without scenario sums)."""

    name = "linear_ts"
    revision = 4  # 3: user sums rounded to float32 by default (user_state_dtype); 4: scored in float32
    uses_user_state = True
    score_dtype = np.float32

    def __init__(self, params: LinearTSParams | None = None) -> None:
        self.params = params or LinearTSParams()
        # One-entry memos: states are immutable, so the last population fit and the last
        # posterior stay valid while the same state objects come back (a rank asks twice:
        # the user vector for retrieval, then the draws; every rank between two learning
        # batches shares one population state).
        self._population_memo: tuple[LinearStats, FloatArray, dict[str, FloatArray]] | None = None
        self._posterior_memo: tuple[LinearStats, LinearStats | None, FloatArray, FloatArray] | None = None
        # The last learn's new user states, stacked: encoding exactly those (the engine saves
        # them next) reads the stacked sums instead of gathering every state again.
        self._learned_memo: UserSums | None = None

    def init_global(self, feature_dim: int) -> PopulationStats:
        return PopulationStats.empty(feature_dim)

    def init_user(self, feature_dim: int) -> LinearStats:
        return LinearStats.zeros(feature_dim)

    def population_fit(self, pop: LinearStats) -> tuple[FloatArray, dict[str, FloatArray]]:
        """(theta_pop float64[D], {scenario: delta_s float64[D]}) posterior means; every
        scenario of `scenario_offsets` has an entry (zeros before its first row)."""
        if self._population_memo is not None and self._population_memo[0] is pop:
            return self._population_memo[1], self._population_memo[2]
        p = self.params
        eye = np.eye(pop.dim)
        precision = pop.gram / p.noise_var + p.pop_prior_precision * eye
        sums = pop.scenarios if isinstance(pop, PopulationStats) else {}
        fitted = [(name, sums[name]) for name in p.scenario_offsets if name in sums]
        if not fitted:
            theta: FloatArray = np.linalg.solve(precision, pop.response / p.noise_var)
            offsets = {name: np.zeros(pop.dim) for name in p.scenario_offsets}
        else:
            rhs = pop.response / p.noise_var
            blocks = []
            for _, stats in fitted:
                gram_s = stats.gram / p.noise_var
                block = cho_factor(gram_s + p.offset_prior_precision * eye, lower=True, check_finite=False)
                precision = precision - gram_s @ cho_solve(block, gram_s, check_finite=False)
                rhs = rhs - gram_s @ cho_solve(block, stats.response / p.noise_var, check_finite=False)
                blocks.append(block)
            theta = np.linalg.solve((precision + precision.T) / 2, rhs)
            offsets = {name: np.zeros(pop.dim) for name in p.scenario_offsets}
            for (name, stats), block in zip(fitted, blocks, strict=True):
                offsets[name] = cho_solve(block, (stats.response - stats.gram @ theta) / p.noise_var,
                                          check_finite=False)
        self._population_memo = (pop, theta, offsets)
        return theta, offsets

    def population_mean(self, pop: LinearStats) -> FloatArray:
        """float64[D] posterior mean of theta_pop (the part every scenario shares)."""
        return self.population_fit(pop)[0]

    def scenario_offset(self, pop: LinearStats, scenario: str) -> FloatArray | None:
        """float64[D] posterior mean of delta_s, or None for a scenario without an offset."""
        return self.population_fit(pop)[1].get(scenario)

    def posterior(self, pop: LinearStats, user: LinearStats | None) -> tuple[FloatArray, FloatArray]:
        """(mean float64[D] of theta_u, lower Cholesky factor L float64[D, D] of the precision A_u).
        LAPACK is called directly (potrf, potrs): scipy.linalg's checked wrappers around the
        same routines cost more than the D = 33 factorisation itself."""
        memo = self._posterior_memo
        if memo is not None and memo[0] is pop and memo[1] is user:
            return memo[2], memo[3]
        given = user
        p = self.params
        user = user if user is not None else LinearStats.zeros(pop.dim)
        precision = user.gram / p.noise_var + p.user_prior_precision * np.eye(pop.dim)
        factor, info = lapack.dpotrf(precision, lower=1, clean=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"user precision is not positive definite (LAPACK potrf info {info})")
        rhs = p.user_prior_precision * self.population_mean(pop) + user.response / p.noise_var
        mean, info = lapack.dpotrs(factor, rhs, lower=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"posterior mean: LAPACK potrs info {info}")
        self._posterior_memo = (pop, given, mean, factor)
        return mean, factor

    def user_vector(self, global_state: LinearStats, user_state: LinearStats | None,
                    scenario: str | None = None) -> FloatArray:
        """float64[D] mean of theta_u, plus the scenario's offset delta_s when `scenario` has one
        (the mean `sample_scores` ranks that scenario's candidates by)."""
        mean = self.posterior(global_state, user_state)[0]
        offset = None if scenario is None else self.scenario_offset(global_state, scenario)
        return mean if offset is None else mean + offset

    def user_evidence(self, user_state: LinearStats | None) -> float:
        """The user's exposures learned so far."""
        return 0.0 if user_state is None else float(user_state.n_exposures)

    def sample_scores(
        self,
        global_state: LinearStats,
        user_state: LinearStats | None,
        context: RankContext,
        rng: np.random.Generator,
        n_draws: int,
    ) -> ScoreDraws:
        """All m draws as one product: theta_j = mean + exploration * L^-T z_j for z_j ~ N(0, I)
        (covariance exploration^2 * A^-1), scored as thetas^T x^T so that the draws come out
        C-contiguous [m, n] (top-k then reads rows, not strided columns) and float32: the
        product in single precision costs half (~60 against ~115 us at 64 x 33 x 1,000; the
        draws are random to far more than float32's 1e-7 relative rounding). The mean scores
        come in the features' precision (float32 from the engine: `score_dtype`). The std of
        x . theta, exploration * ||L^-1 x||, costs a triangular solve over the candidates it
        is asked for: a slate asks for its k items (ScoreDraws.std_at)."""
        x = context.features
        mean, factor = self.posterior(global_state, user_state)
        noise = rng.standard_normal((x.shape[1], n_draws))
        deviation, _ = lapack.dtrtrs(factor, noise, lower=1, trans=1)  # L^-T z, float64[D, m]
        offset = self.scenario_offset(global_state, context.scenario)
        if offset is not None:
            mean = mean + offset
        exploration = self.params.exploration
        thetas = mean[:, None] + exploration * deviation  # float64[D, m]

        def std_of(indices: IntArray) -> FloatArray:
            rows = x[indices].T.astype(np.float64)  # float64[D, j], Fortran order as LAPACK reads it
            whitened, _ = lapack.dtrtrs(factor, rows, lower=1)  # L^-1 x^T
            std: FloatArray = exploration * np.sqrt(np.einsum("ij,ij->j", whitened, whitened))
            return std

        draws = thetas.T.astype(np.float32) @ np.asarray(x, dtype=np.float32).T  # float32[m, n]
        return ScoreDraws(draws, x @ mean.astype(x.dtype), std_of=std_of)

    def _offset_predictions(self, global_state: LinearStats, batch: FeedbackBatch) -> FloatArray | None:
        """float64[m] exposure * x . delta_s per row (None when no scenario has an offset)."""
        offsets = self.population_fit(global_state)[1]
        if not offsets:
            return None
        scenarios = np.asarray(batch.scenarios, dtype=object)
        predicted = np.zeros(len(batch))
        for name, delta in offsets.items():
            rows = np.flatnonzero(scenarios == name)
            if len(rows):
                predicted[rows] = batch.exposures[rows] * (batch.features[rows] @ delta)
        return predicted

    def _scenario_sums(self, global_state: LinearStats, batch: FeedbackBatch) -> dict[str, LinearStats]:
        """The per-scenario sums of the offset scenarios, this batch's rows added."""
        sums = dict(global_state.scenarios) if isinstance(global_state, PopulationStats) else {}
        if not self.params.scenario_offsets:
            return sums
        scenarios = np.asarray(batch.scenarios, dtype=object)
        for name in self.params.scenario_offsets:
            rows = np.flatnonzero(scenarios == name)
            if len(rows) == 0:
                continue
            x, exposure, reward = batch.features[rows], batch.exposures[rows], batch.rewards[rows]
            current = sums.get(name) or LinearStats.zeros(batch.features.shape[1])
            sums[name] = current.plus(packed_gram(x, exposure), x.T @ reward, float(exposure.sum()),
                                      float(reward.sum()))
        return sums

    def learn(
        self,
        global_state: LinearStats,
        user_states: Mapping[str, LinearStats | None],
        batch: FeedbackBatch,
    ) -> tuple[LinearStats, dict[str, LinearStats | None]]:
        x = batch.features
        predicted = self._offset_predictions(global_state, batch)
        user_rewards = batch.rewards if predicted is None else batch.rewards - predicted
        increments, exposures, rewards = grouped_rows(
            batch.user_index, len(batch.users), x, batch.exposures, user_rewards
        )
        if predicted is not None:  # reward totals count raw rewards (the responses hold residuals)
            raw = np.bincount(batch.user_index, weights=batch.rewards, minlength=len(batch.users))
            rewards = raw.astype(np.float64)
        states = [user_states.get(user_id) for user_id in batch.users]
        learned = self._learned_memo = add_user_sums(states, increments, exposures, rewards, self._float32)
        new_states, change = learned.states, learned.change
        packed = increments.shape[1] - x.shape[1]
        pooled_response = change[packed:]
        if predicted is not None:  # the pooled sums hold raw rewards
            pooled_response = pooled_response + x.T @ predicted
        pooled = LinearStats(
            global_state.gram_upper + change[:packed], global_state.response + pooled_response,
            global_state.n_exposures + float(exposures.sum()),
            global_state.reward_total + float(rewards.sum()),
        )
        new_global = PopulationStats.of(pooled, self._scenario_sums(global_state, batch))
        return new_global, dict(zip(batch.users, new_states, strict=True))

    def unlearn(self, global_state: LinearStats, user_state: LinearStats | None) -> LinearStats:
        """The population minus the user's sums: the pooled statistics are sums of the users'
        (each row is added to both), so this is exact. With scenario offsets the user's
        response holds residuals and no per-scenario split, so the population is kept as is."""
        if user_state is None or self.params.scenario_offsets:
            return global_state
        pooled = global_state.plus(-user_state.gram_upper, -user_state.response, -user_state.n_exposures,
                                   -user_state.reward_total)
        scenarios = global_state.scenarios if isinstance(global_state, PopulationStats) else {}
        return PopulationStats.of(pooled, scenarios)

    def encode_global(self, state: LinearStats) -> bytes:
        return encode_stats("linear_ts.population", state)

    def decode_global(self, blob: bytes) -> PopulationStats:
        decoded = decode_stats("linear_ts.population", blob)
        assert isinstance(decoded, PopulationStats)
        return decoded

    @property
    def _float32(self) -> bool:
        return bool(self.params.user_state_dtype == "float32")

    def encode_user(self, state: LinearStats) -> bytes:
        return encode_stats("linear_ts.user", state, float32=self._float32)

    def decode_user(self, blob: bytes) -> LinearStats:
        return decode_stats("linear_ts.user", blob)

    def encode_users(self, states: Sequence[LinearStats]) -> list[bytes]:
        if not states:
            return []
        dim = states[0].dim
        packed = dim * (dim + 1) // 2
        memo = self._learned_memo
        if memo is not None and len(memo.states) == len(states) and all(map(operator.is_, memo.states, states)):
            return encode_users(dim, memo.sums[:, :packed], memo.sums[:, packed:], memo.n_exposures,
                                memo.reward_totals, self._float32)
        grams, responses = stacked_sums(states, packed, dim)
        n_exposures = np.fromiter((s.n_exposures for s in states), dtype=np.float64, count=len(states))
        reward_totals = np.fromiter((s.reward_total for s in states), dtype=np.float64, count=len(states))
        return encode_users(dim, grams, responses, n_exposures, reward_totals, self._float32)

    def decode_users(self, blobs: Sequence[bytes]) -> list[LinearStats]:
        return decode_users(blobs)

    def check_invariants(self, global_state: LinearStats, user_state: LinearStats | None) -> None:
        scenario_sums = global_state.scenarios if isinstance(global_state, PopulationStats) else {}
        checked = [("population", global_state), ("user", user_state)]
        checked += [(f"scenario {name!r}", stats) for name, stats in scenario_sums.items()]
        for label, stats in checked:
            if stats is None:
                continue
            if stats.gram_upper.shape != (stats.dim * (stats.dim + 1) // 2,):
                raise ValueError(f"{label} packed Gram matrix has the wrong length")
            if stats.dim != global_state.dim:
                raise ValueError(f"{label} has D={stats.dim}, the population D={global_state.dim}")
            precision = stats.gram / self.params.noise_var + self.params.user_prior_precision * np.eye(stats.dim)
            if np.linalg.eigvalsh(precision).min() <= 0:
                raise ValueError(f"{label} precision is not positive definite")
            if not np.all(np.isfinite(stats.response)):
                raise ValueError(f"{label} response vector is not finite")


__all__ = [
    "LinearStats", "LinearTSParams", "LinearThompsonSampling", "PopulationStats", "decode_stats",
    "encode_stats", "grouped_sums",
]
