"""Linear Thompson sampling with per-user posteriors shrunk towards a population posterior.

Model (Bayesian linear regression of reward on features x in R^D):
    population: theta_pop ~ N(0, I / pop_prior_precision)
    user u:     theta_u   ~ N(mu_pop, I / user_prior_precision)   (shrinkage to population)
    reward      r = x . theta_u + noise, noise variance `noise_var`
Sufficient statistics are sums, so updates commute: an exposure adds x x^T to the Gram
matrix, a reward adds r * x to the response vector; clicks and impressions may arrive in
either order and late. Posterior of user u:
    A_u = user_prior_precision * I + G_u / noise_var
    mu_u = A_u^-1 (user_prior_precision * mu_pop + h_u / noise_var)
and draws are theta ~ N(mu_u, exploration^2 * A_u^-1). A new user is the population.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from scipy.linalg import cho_solve, cholesky, solve_triangular

from online.codec import StateCodecError
from online.policies.base import FeedbackBatch, FloatArray, Policy, RankContext, ScoreDraws


@dataclass(frozen=True)
class LinearTSParams:
    """Hyperparameters (all > 0): prior precisions, reward noise variance, exploration.

    Defaults suit click rewards (CTR of a few percent, so reward variance ~0.03): a user's
    deviation from the population has prior std 0.1 per feature, and Thompson draws are
    scaled by `exploration` (0.3 won over 0.25-1.0 on the simulator, bench/policies_simulator.py).
    """

    pop_prior_precision: float = 1.0
    user_prior_precision: float = 100.0
    noise_var: float = 0.03
    exploration: float = 0.3

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not value > 0:
                raise ValueError(f"LinearTSParams.{name} must be > 0, got {value}")


@dataclass(frozen=True)
class LinearStats:
    """Sufficient statistics: the Gram matrix (sum of exposure x x^T) kept as its packed
    upper triangle float64[D(D+1)/2], the response float64[D] (sum of reward x), and
    the counts of exposures and of reward mass."""

    gram_upper: FloatArray
    response: FloatArray
    n_exposures: float = 0.0
    reward_total: float = 0.0

    @staticmethod
    def zeros(dim: int) -> LinearStats:
        return LinearStats(np.zeros(dim * (dim + 1) // 2), np.zeros(dim))

    @staticmethod
    def from_gram(gram: FloatArray, response: FloatArray, n_exposures: float = 0.0,
                  reward_total: float = 0.0) -> LinearStats:
        """Pack a full symmetric float64[D, D] Gram matrix."""
        rows, cols = _upper(int(response.shape[0]))
        return LinearStats(np.asarray(gram)[rows, cols].copy(), response, n_exposures, reward_total)

    @property
    def dim(self) -> int:
        return int(self.response.shape[0])

    @property
    def gram(self) -> FloatArray:
        """float64[D, D] the full symmetric Gram matrix."""
        full: FloatArray = self.gram_upper[_symmetric_index(self.dim)]
        return full


@lru_cache(maxsize=16)
def _upper(dim: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    return np.triu_indices(dim)


@lru_cache(maxsize=16)
def _symmetric_index(dim: int) -> npt.NDArray[np.intp]:
    """int[D, D]: position in the packed upper triangle of each full-matrix entry."""
    index = np.zeros((dim, dim), dtype=np.intp)
    rows, cols = _upper(dim)
    index[rows, cols] = np.arange(len(rows))
    index[cols, rows] = np.arange(len(rows))
    return index


_HEADER = struct.Struct("<4sBBHdd")
_MAGIC = b"SLTS"
_KINDS = {"linear_ts.user": 1, "linear_ts.population": 2}


def encode_stats(kind: str, stats: LinearStats) -> bytes:
    """Fixed binary layout, version 1: header (magic, version, kind, D, counts), then the
    packed Gram triangle and the response as little-endian float64. D=33: 4,776 bytes."""
    header = _HEADER.pack(_MAGIC, 1, _KINDS[kind], stats.dim, stats.n_exposures, stats.reward_total)
    values = (stats.gram_upper.astype("<f8", copy=False), stats.response.astype("<f8", copy=False))
    return header + values[0].tobytes() + values[1].tobytes()


def decode_stats(kind: str, blob: bytes) -> LinearStats:
    if len(blob) < _HEADER.size:
        raise StateCodecError(f"{kind} state truncated")
    magic, version, kind_id, dim, n_exposures, reward_total = _HEADER.unpack_from(blob)
    if magic != _MAGIC or kind_id != _KINDS[kind]:
        raise StateCodecError(f"not a {kind} state")
    if version > 1:
        raise StateCodecError(f"{kind} state version {version} is newer than 1")
    packed = dim * (dim + 1) // 2
    if len(blob) != _HEADER.size + 8 * (packed + dim):
        raise StateCodecError(f"{kind} state has the wrong length for D={dim}")
    values = np.frombuffer(blob, dtype="<f8", offset=_HEADER.size)
    return LinearStats(values[:packed].copy(), values[packed:].copy(), n_exposures, reward_total)


def _add(stats: LinearStats, x: FloatArray, exposure: FloatArray, reward: FloatArray) -> LinearStats:
    rows, cols = _upper(stats.dim)
    gram = x.T @ (x * exposure[:, None])
    return LinearStats(
        stats.gram_upper + gram[rows, cols],
        stats.response + x.T @ reward,
        stats.n_exposures + float(exposure.sum()),
        stats.reward_total + float(reward.sum()),
    )


def grouped_sums(
    group: npt.NDArray[np.int64], n_groups: int, x: FloatArray, exposure: FloatArray,
    reward: FloatArray, chunk: int = 512,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Per-group sufficient statistics in a few vectorised calls.

    group: int64[m] in [0, n_groups); x: float64[m, D]; exposure, reward: float64[m].
    Returns packed Gram triangles float64[G, D(D+1)/2], responses float64[G, D],
    exposure totals and reward totals float64[G]. Exposure rows of each group are
    gathered into zero-padded blocks (groups sorted by row count, cut into chunks so
    padding stays small) and multiplied with one batched matmul per chunk instead of
    one small matmul per group. Reward rows only touch the responses.
    """
    dim = x.shape[1]
    rows, cols = _upper(dim)
    packed = rows * dim + cols
    shown = np.flatnonzero(exposure)
    x_shown, group_shown = x[shown], group[shown]
    if np.any(exposure[shown] != 1.0):
        x_shown = x_shown * np.sqrt(exposure[shown])[:, None]
    counts = np.bincount(group_shown, minlength=n_groups)
    order = np.argsort(group_shown, kind="stable")
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    padded = np.vstack([x_shown, np.zeros((1, dim))])
    by_count = np.argsort(counts, kind="stable")
    by_count = by_count[counts[by_count] > 0]
    sorted_gram = np.empty((len(by_count), len(rows)))
    for first in range(0, len(by_count), chunk):
        members = by_count[first : first + chunk]
        width = int(counts[members].max())
        offsets = np.arange(width)
        valid = offsets[None, :] < counts[members][:, None]
        gather = np.minimum(starts[members][:, None] + offsets, max(len(order) - 1, 0))
        xs = padded[np.where(valid, order[gather], len(shown))]
        products = np.matmul(xs.transpose(0, 2, 1), xs).reshape(len(members), -1)
        np.take(products, packed, axis=1, out=sorted_gram[first : first + len(members)])
    gram = np.zeros((n_groups, len(rows)))
    gram[by_count] = sorted_gram
    response = np.zeros((n_groups, dim))
    paid = np.flatnonzero(reward)
    np.add.at(response, group[paid], x[paid] * reward[paid][:, None])
    totals_e = np.bincount(group, weights=exposure, minlength=n_groups).astype(np.float64)
    totals_r = np.bincount(group, weights=reward, minlength=n_groups).astype(np.float64)
    return gram, response, totals_e, totals_r


class LinearThompsonSampling(Policy[LinearStats, LinearStats]):
    """Per-user linear Thompson sampling over item feature vectors (see module doc)."""

    name = "linear_ts"
    uses_user_state = True

    def __init__(self, params: LinearTSParams | None = None) -> None:
        self.params = params or LinearTSParams()
        # One-entry memos: states are immutable, so the last population mean and the last
        # posterior stay valid while the same state objects come back (a rank asks twice:
        # the user vector for retrieval, then the draws; every rank between two learning
        # batches shares one population state).
        self._population_memo: tuple[LinearStats, FloatArray] | None = None
        self._posterior_memo: tuple[LinearStats, LinearStats | None, FloatArray, FloatArray] | None = None

    def init_global(self, feature_dim: int) -> LinearStats:
        return LinearStats.zeros(feature_dim)

    def init_user(self, feature_dim: int) -> LinearStats:
        return LinearStats.zeros(feature_dim)

    def population_mean(self, pop: LinearStats) -> FloatArray:
        """float64[D] posterior mean of theta_pop."""
        if self._population_memo is not None and self._population_memo[0] is pop:
            return self._population_memo[1]
        p = self.params
        precision = pop.gram / p.noise_var + p.pop_prior_precision * np.eye(pop.dim)
        result: FloatArray = np.linalg.solve(precision, pop.response / p.noise_var)
        self._population_memo = (pop, result)
        return result

    def posterior(self, pop: LinearStats, user: LinearStats | None) -> tuple[FloatArray, FloatArray]:
        """(mean float64[D], lower Cholesky factor L float64[D, D] of the precision A_u)."""
        memo = self._posterior_memo
        if memo is not None and memo[0] is pop and memo[1] is user:
            return memo[2], memo[3]
        given = user
        p = self.params
        user = user if user is not None else LinearStats.zeros(pop.dim)
        precision = user.gram / p.noise_var + p.user_prior_precision * np.eye(pop.dim)
        factor = cholesky(precision, lower=True, check_finite=False)
        rhs = p.user_prior_precision * self.population_mean(pop) + user.response / p.noise_var
        mean: FloatArray = cho_solve((factor, True), rhs, check_finite=False)
        self._posterior_memo = (pop, given, mean, factor)
        return mean, factor

    def user_vector(self, global_state: LinearStats, user_state: LinearStats | None) -> FloatArray:
        return self.posterior(global_state, user_state)[0]

    def sample_scores(
        self,
        global_state: LinearStats,
        user_state: LinearStats | None,
        context: RankContext,
        rng: np.random.Generator,
        n_draws: int,
    ) -> ScoreDraws:
        x = context.features
        mean, factor = self.posterior(global_state, user_state)
        noise = rng.standard_normal((x.shape[1], n_draws))
        # theta = mean + exploration * L^-T z  has covariance exploration^2 * A^-1.
        deviation = solve_triangular(factor, noise, lower=True, trans="T", check_finite=False)
        thetas = mean[:, None] + self.params.exploration * deviation
        whitened = solve_triangular(factor, x.T, lower=True, check_finite=False)
        std = self.params.exploration * np.sqrt(np.einsum("ij,ij->j", whitened, whitened))
        return ScoreDraws(draws=(x @ thetas).T, mean=x @ mean, std=std)

    def learn(
        self,
        global_state: LinearStats,
        user_states: Mapping[str, LinearStats | None],
        batch: FeedbackBatch,
    ) -> tuple[LinearStats, dict[str, LinearStats | None]]:
        x = batch.features
        gram, response, exposures, rewards = grouped_sums(
            batch.user_index, len(batch.users), x, batch.exposures, batch.rewards
        )
        new_global = LinearStats(
            global_state.gram_upper + gram.sum(axis=0), global_state.response + response.sum(axis=0),
            global_state.n_exposures + float(exposures.sum()),
            global_state.reward_total + float(rewards.sum()),
        )
        updated: dict[str, LinearStats | None] = {}
        exposure_totals, reward_totals = exposures.tolist(), rewards.tolist()
        for code, user_id in enumerate(batch.users):
            current = user_states.get(user_id)
            if current is None:
                updated[user_id] = LinearStats(
                    gram[code], response[code], exposure_totals[code], reward_totals[code]
                )
            else:
                updated[user_id] = LinearStats(
                    current.gram_upper + gram[code], current.response + response[code],
                    current.n_exposures + exposure_totals[code],
                    current.reward_total + reward_totals[code],
                )
        return new_global, updated

    def encode_global(self, state: LinearStats) -> bytes:
        return encode_stats("linear_ts.population", state)

    def decode_global(self, blob: bytes) -> LinearStats:
        return decode_stats("linear_ts.population", blob)

    def encode_user(self, state: LinearStats) -> bytes:
        return encode_stats("linear_ts.user", state)

    def decode_user(self, blob: bytes) -> LinearStats:
        return decode_stats("linear_ts.user", blob)

    def check_invariants(self, global_state: LinearStats, user_state: LinearStats | None) -> None:
        for label, stats in (("population", global_state), ("user", user_state)):
            if stats is None:
                continue
            if stats.gram_upper.shape != (stats.dim * (stats.dim + 1) // 2,):
                raise ValueError(f"{label} packed Gram matrix has the wrong length")
            precision = stats.gram / self.params.noise_var + self.params.user_prior_precision * np.eye(stats.dim)
            if np.linalg.eigvalsh(precision).min() <= 0:
                raise ValueError(f"{label} precision is not positive definite")
            if not np.all(np.isfinite(stats.response)):
                raise ValueError(f"{label} response vector is not finite")
