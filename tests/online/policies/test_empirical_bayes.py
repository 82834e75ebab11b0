"""Empirical-Bayes hyperparameters: the closed-form evidence and its maximum on data drawn from the model."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from online.policies.empirical_bayes import (
    fit_population_prior,
    fit_user_prior,
    item_prior_precision,
    log_evidence,
)
from online.policies.hybrid_stats import ItemSums
from online.policies.linear_stats import LinearStats

D = 3


def user_sums(x: np.ndarray, y: np.ndarray) -> LinearStats:
    return LinearStats.from_gram(x.T @ x, x.T @ y, float(len(y)), float(y @ y))


def test_the_evidence_equals_the_dense_gaussian_likelihood() -> None:
    rng = np.random.default_rng(0)
    mean, precision, noise = rng.normal(size=D), 4.0, 0.3
    x, y = rng.normal(size=(12, D)), rng.normal(size=12)
    dense = multivariate_normal(x @ mean, noise * np.eye(12) + x @ x.T / precision).logpdf(y)
    assert log_evidence([user_sums(x, y)], mean, precision, noise) == pytest.approx(dense, rel=1e-10)


def test_the_maximum_recovers_the_generating_prior_and_noise() -> None:
    rng = np.random.default_rng(1)
    mean, precision, noise = np.array([0.5, -0.2, 0.1]), 25.0, 0.04
    users = []
    for _ in range(400):
        theta = mean + rng.normal(size=D) / np.sqrt(precision)
        x = rng.normal(size=(30, D))
        users.append(user_sums(x, x @ theta + rng.normal(size=30) * np.sqrt(noise)))
    fit = fit_user_prior(users, mean)
    assert fit.n_groups == 400
    assert fit.noise_var == pytest.approx(noise, rel=0.05)
    assert fit.prior_precision == pytest.approx(precision, rel=0.25)
    assert fit.log_evidence >= log_evidence(users, mean, 100.0, 0.03)  # beats the defaults
    pooled = fit_population_prior(users[0])
    assert pooled.n_groups == 1 and pooled.noise_var > 0


def test_item_prior_precision_from_item_sums() -> None:
    rng = np.random.default_rng(2)
    n, spread, noise = 300, 0.05, 0.04
    effects = rng.normal(0, spread, size=n)
    exposures = rng.integers(50, 400, size=n).astype(float)
    rewards = exposures * (0.05 + effects) + rng.normal(size=n) * np.sqrt(noise * exposures)
    features = np.zeros((n, D))
    features[:, 0] = exposures  # x = (1, 0, 0): theta_0 = 0.05 is the base rate
    items = ItemSums(tuple(f"i{k}" for k in range(n)), exposures, rewards, features)
    estimate = item_prior_precision(items, np.array([0.05, 0.0, 0.0]), noise)
    assert estimate is not None and estimate == pytest.approx(1 / spread**2, rel=0.3)
    flat = ItemSums(items.ids, exposures, exposures * 0.05, features)
    assert item_prior_precision(flat, np.array([0.05, 0.0, 0.0]), noise) is None  # no spread beyond noise
