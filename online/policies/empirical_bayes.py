"""Empirical-Bayes hyperparameters of linear TS from the population's own sufficient statistics.

Linear TS (online.policies.linear_ts) models a user's rewards as y = X theta_u + noise with
theta_u ~ N(theta_pop, I / user_prior_precision) and noise variance `noise_var`. Integrating theta_u
out, a user's rewards are Gaussian with covariance noise_var I + X X^T / user_prior_precision, and
their log evidence needs only the user's sums: with n exposures, Gram G, response h, sum of squared
rewards yy (= the reward total for click rewards in {0, 1}), A = lambda I + G / s2 and
b = h - G theta_pop (s2 = noise_var, lambda = user_prior_precision):

    log p(y_u) = -1/2 [n log(2 pi s2) + log det A - D log lambda
                       + (yy - 2 theta_pop . h + theta_pop' G theta_pop) / s2 - b' A^-1 b / s2^2]

(Woodbury and the matrix determinant lemma). `fit_user_prior` maximises the sum over users in
(log lambda, log s2), theta_pop held at the population's posterior mean: type-II maximum likelihood,
the users' own data choosing how far they stray from the population and how noisy clicks are.
`fit_population_prior` does the same for the pooled sums with theta ~ N(0, I / pop_prior_precision)
(the only level a log without user ids, such as the Open Bandit Dataset, has).
`item_prior_precision` is the method-of-moments estimate of hybrid TS's item-effect prior from its
item sums. Exploration is not a likelihood parameter and is left as set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from online.policies.base import FloatArray
from online.policies.hybrid_stats import ItemSums
from online.policies.linear_stats import LinearStats


@dataclass(frozen=True)
class EvidenceFit:
    """prior_precision, noise_var: the maximising values; log_evidence: the maximum (nats);
    n_groups: users (or 1 for the pooled fit) with at least one exposure."""

    prior_precision: float
    noise_var: float
    log_evidence: float
    n_groups: int


def log_evidence(stats: Sequence[LinearStats], mean: FloatArray, prior_precision: float, noise_var: float) -> float:
    """Sum over groups of log p(y) (module doc) with prior N(mean float64[D], I / prior_precision)."""
    if not stats:
        return 0.0
    gram = np.stack([s.gram for s in stats])
    response = np.stack([s.response for s in stats])
    n = np.array([s.n_exposures for s in stats])
    yy = np.array([s.reward_total for s in stats])
    return float(_log_evidence(gram, response, n, yy, mean, prior_precision, noise_var).sum())


def _log_evidence(gram: FloatArray, response: FloatArray, n: FloatArray, yy: FloatArray, mean: FloatArray,
                  prior_precision: float, noise_var: float) -> FloatArray:
    dim = gram.shape[1]
    precision = gram / noise_var + prior_precision * np.eye(dim)
    factor = np.linalg.cholesky(precision)
    log_det = 2 * np.log(np.diagonal(factor, axis1=1, axis2=2)).sum(axis=1)
    residual = response - gram @ mean
    whitened = np.linalg.solve(factor, residual[:, :, None])[:, :, 0]
    fit = (yy - 2 * response @ mean + np.einsum("i,gij,j->g", mean, gram, mean)) / noise_var
    quad = fit - (whitened**2).sum(axis=1) / noise_var**2
    out: FloatArray = -0.5 * (n * np.log(2 * np.pi * noise_var) + log_det - dim * np.log(prior_precision) + quad)
    return out


def _maximise(stats: Sequence[LinearStats], mean: FloatArray, start: tuple[float, float]) -> EvidenceFit:
    shown = [s for s in stats if s.n_exposures > 0]
    if not shown:
        raise ValueError("no group has an exposure: nothing to estimate from")
    gram = np.stack([s.gram for s in shown])
    response = np.stack([s.response for s in shown])
    n = np.array([s.n_exposures for s in shown])
    yy = np.array([s.reward_total for s in shown])

    def negative(log_params: FloatArray) -> float:
        precision, noise = np.exp(log_params)
        return -float(_log_evidence(gram, response, n, yy, mean, precision, noise).sum())

    result = minimize(negative, np.log(np.asarray(start)), method="Nelder-Mead",
                      options={"xatol": 1e-4, "fatol": 1e-6, "maxiter": 2000})
    precision, noise = np.exp(result.x)
    return EvidenceFit(float(precision), float(noise), -float(result.fun), len(shown))


def fit_user_prior(users: Sequence[LinearStats], population_mean: FloatArray,
                   start: tuple[float, float] = (100.0, 0.03)) -> EvidenceFit:
    """Type-II ML (user_prior_precision, noise_var) from per-user sums (reward-net responses as
    linear TS stores them), theta_pop = population_mean float64[D] (module doc)."""
    return _maximise(users, population_mean, start)


def fit_population_prior(pooled: LinearStats, start: tuple[float, float] = (1.0, 0.03)) -> EvidenceFit:
    """Type-II ML (pop_prior_precision, noise_var) from the pooled sums, theta ~ N(0, I / precision)."""
    return _maximise([pooled], np.zeros(pooled.dim), start)


def item_prior_precision(items: ItemSums, population_mean: FloatArray, noise_var: float,
                         min_exposures: float = 5.0) -> float | None:
    """Method-of-moments prior precision of hybrid TS's item effects: over items with at least
    `min_exposures` exposures, each one's residual rate (R_i - X_i . theta) / E_i estimates b_i with
    sampling variance noise_var / E_i, so Var(b) ~ mean(residual^2 - noise_var / E_i) (weighted by
    E_i). None when too few items or the estimate is not positive (no spread beyond noise)."""
    keep = items.exposures >= min_exposures
    if keep.sum() < 10:
        return None
    exposures = items.exposures[keep]
    residual = (items.rewards[keep] - items.features[keep] @ population_mean) / exposures
    variance = float(np.average(residual**2 - noise_var / exposures, weights=exposures))
    return 1.0 / variance if variance > 0 else None
