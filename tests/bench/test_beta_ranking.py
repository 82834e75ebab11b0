"""Exact position probabilities of Bernoulli TS rankings: against direct integration and sampling."""

import numpy as np
import pytest
from scipy import integrate, stats

from bench.beta_ranking import beta_rank_probabilities, column_sum_error


def test_matches_direct_integration_for_a_small_ranking() -> None:
    alpha, beta = np.array([2.0, 1.0, 5.0, 3.0]), np.array([30.0, 25.0, 60.0, 90.0])
    probs = beta_rank_probabilities(alpha[None], beta[None], 2, n_grid=400)[0]
    dists = [stats.beta(a, b) for a, b in zip(alpha, beta, strict=True)]
    for i, dist in enumerate(dists):
        others = [d for j, d in enumerate(dists) if j != i]

        def top(x: float, dist=dist, others=others) -> float:  # type: ignore[no-untyped-def]
            return float(dist.pdf(x) * np.prod([d.cdf(x) for d in others]))

        def second(x: float, dist=dist, others=others) -> float:  # type: ignore[no-untyped-def]
            cdfs = np.array([d.cdf(x) for d in others])
            exactly_one = sum((1 - cdfs[k]) * np.prod(np.delete(cdfs, k)) for k in range(len(others)))
            return float(dist.pdf(x) * exactly_one)

        assert probs[i, 0] == pytest.approx(integrate.quad(top, 0, 1, limit=200)[0], abs=1e-4)
        assert probs[i, 1] == pytest.approx(integrate.quad(second, 0, 1, limit=200)[0], abs=1e-4)
    assert column_sum_error(probs[None]) < 1e-4


def test_agrees_with_sampled_rankings_and_symmetry() -> None:
    rng = np.random.default_rng(7)
    alpha = 1.0 + rng.integers(0, 4, size=(2, 30)).astype(float)
    beta = 20.0 + rng.integers(0, 300, size=(2, 30)).astype(float)
    probs = beta_rank_probabilities(alpha, beta, 3)
    m = 100_000
    for state in range(2):
        draws = rng.beta(alpha[state], beta[state], size=(m, 30))
        top = np.argsort(-draws, axis=1)[:, :3]
        sampled = np.stack([np.bincount(top[:, slot], minlength=30) for slot in range(3)], axis=1) / m
        sd = np.sqrt(probs[state] * (1 - probs[state]) / m) + 1e-4  # + quadrature error allowance
        assert np.all(np.abs(sampled - probs[state]) < 5 * sd)
    equal = beta_rank_probabilities(np.ones((1, 8)), np.full((1, 8), 20.0), 3)
    assert np.allclose(equal, 1 / 8, atol=5e-4)  # default grid: error ~3e-4


def test_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="alpha, beta"):
        beta_rank_probabilities(np.ones((1, 3)), np.zeros((1, 3)), 1)
    with pytest.raises(ValueError, match="n_positions"):
        beta_rank_probabilities(np.ones((1, 3)), np.ones((1, 3)), 4)
