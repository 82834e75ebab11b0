"""Slate-level estimators (IIPS, RIPS, SIPS): hand-computed values, masks, known truth."""

from __future__ import annotations

import numpy as np
import pytest

from online.evaluation import (
    ips,
    slate_cascade_ips,
    slate_independent_ips,
    slate_propensity,
    slate_standard_ips,
)

REWARDS = np.array([[1.0, 0.0], [0.0, 1.0]])
PSCORES = np.array([[0.5, 0.5], [0.25, 0.5]])
EVAL = np.array([[1.0, 0.25], [0.5, 1.0]])  # rho = [[2, 0.5], [2, 2]]


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_hand_computed_values() -> None:
    # IIPS: slate 0: 2 * 1 = 2; slate 1: 2 * 1 = 2
    assert slate_independent_ips(REWARDS, PSCORES, EVAL, rng=rng()).value == pytest.approx(2.0)
    # RIPS: slate 0: 2 * 1 = 2; slate 1: (2 * 2) * 1 = 4
    assert slate_cascade_ips(REWARDS, PSCORES, EVAL, rng=rng()).value == pytest.approx(3.0)
    # SIPS: slate 0: (2 * 0.5) * 1 = 1; slate 1: (2 * 2) * 1 = 4
    sips = slate_standard_ips(REWARDS, PSCORES, EVAL, rng=rng())
    assert (sips.name, sips.n) == ("slate_sips", 2)
    assert sips.value == pytest.approx(2.5)


def test_joint_propensities_match_per_position_product() -> None:
    joint = slate_standard_ips(
        REWARDS, slate_propensity(PSCORES), slate_propensity(EVAL), rng=rng(3), n_bootstrap=100
    )
    product = slate_standard_ips(REWARDS, PSCORES, EVAL, rng=rng(3), n_bootstrap=100)
    assert joint.value == pytest.approx(product.value)
    np.testing.assert_allclose(slate_propensity(PSCORES), [0.25, 0.125])


def test_mask_ignores_missing_positions_whatever_their_values() -> None:
    rewards = np.array([[1.0, np.nan], [0.0, 1.0]])
    pscores = np.array([[0.5, np.nan], [0.25, 0.5]])
    evals = np.array([[1.0, 7.0], [0.5, 1.0]])
    mask = np.array([[True, False], [True, True]])
    iips = slate_independent_ips(rewards, pscores, evals, rng=rng(), mask=mask)
    assert iips.value == pytest.approx(2.0)
    sips = slate_standard_ips(rewards, pscores, evals, rng=rng(), mask=mask)
    assert sips.value == pytest.approx((2.0 + 4.0) / 2)
    with pytest.raises(ValueError, match="rewards: must be finite"):
        slate_independent_ips(rewards, pscores, evals, rng=rng())
    with pytest.raises(ValueError, match="pscores: must be finite"):
        slate_independent_ips(np.nan_to_num(rewards), pscores, evals, rng=rng())
    with pytest.raises(ValueError, match="mask"):
        slate_independent_ips(REWARDS, PSCORES, EVAL, rng=rng(), mask=np.ones((2, 2)))


def test_single_position_slates_reduce_to_ips() -> None:
    generator = rng(4)
    rewards = generator.binomial(1, 0.4, size=(200, 1)).astype(float)
    pscores = generator.uniform(0.1, 1.0, size=(200, 1))
    evals = generator.uniform(0.0, 1.0, size=(200, 1))
    flat = ips(rewards[:, 0], pscores[:, 0], evals[:, 0], rng=rng(9), n_bootstrap=100)
    for estimator in (slate_independent_ips, slate_cascade_ips, slate_standard_ips):
        estimate = estimator(rewards, pscores, evals, rng=rng(9), n_bootstrap=100)
        assert (estimate.value, estimate.ci_low, estimate.ci_high) == pytest.approx(
            (flat.value, flat.ci_low, flat.ci_high)
        )


def test_shape_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match="rewards"):
        slate_independent_ips(np.ones(3), PSCORES, EVAL, rng=rng())
    with pytest.raises(ValueError, match="eval_probs"):
        slate_cascade_ips(REWARDS, PSCORES, EVAL[:, :1], rng=rng())
    with pytest.raises(ValueError, match="eval_probs"):
        slate_standard_ips(REWARDS, np.array([0.5, 0.5]), np.array([0.5]), rng=rng())


def test_intervals_cover_known_truth_with_independent_positions() -> None:
    """Logging fills each of 3 positions uniformly from 4 items, independently; reward at a
    position depends on (item, position) only, so IIPS, RIPS and SIPS are all unbiased.
    Over 20 independent logs each 95% interval must cover the truth at least 15 times
    (probability of fewer, at nominal coverage: < 0.001)."""
    n, n_items, n_positions = 3000, 4, 3
    theta = np.array([[0.5, 0.3, 0.2], [0.2, 0.2, 0.1], [0.1, 0.1, 0.05], [0.4, 0.2, 0.1]])
    target = np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7], [0.25, 0.25, 0.25, 0.25]])
    truth = float(sum(target[p] @ theta[:, p] for p in range(n_positions)))
    positions = np.arange(n_positions)[None, :]
    estimators = (slate_independent_ips, slate_cascade_ips, slate_standard_ips)
    covered = np.zeros(len(estimators), dtype=int)
    for seed in range(20):
        generator = rng(100 + seed)
        items = generator.integers(0, n_items, size=(n, n_positions))
        rewards = generator.binomial(1, theta[items, positions]).astype(float)
        pscores = np.full((n, n_positions), 1 / n_items)
        evals = target[positions, items]
        for j, estimator in enumerate(estimators):
            covered[j] += estimator(rewards, pscores, evals, rng=rng(seed), n_bootstrap=200).covers(truth)
    assert covered.min() >= 15, covered


def test_position_level_ips_is_iips_per_position() -> None:
    """Position-level: one observation per (slate, position), clustered by slate; with L
    positions per slate it is exactly IIPS / L, interval included (same resampled slates)."""
    generator = rng(6)
    n, n_positions = 300, 3
    rewards = generator.binomial(1, 0.3, size=(n, n_positions)).astype(float)
    pscores = generator.uniform(0.2, 1.0, size=(n, n_positions))
    evals = generator.uniform(0.0, 1.0, size=(n, n_positions))
    slate = slate_independent_ips(rewards, pscores, evals, rng=rng(8), n_bootstrap=200)
    clusters = np.repeat(np.arange(n), n_positions)
    position = ips(rewards.ravel(), pscores.ravel(), evals.ravel(), rng=rng(8), n_bootstrap=200, clusters=clusters,
                   interval="percentile")  # the bootstrap alone, as IIPS computes it
    assert position.n == n * n_positions
    np.testing.assert_allclose(
        [position.value, position.ci_low, position.ci_high],
        np.array([slate.value, slate.ci_low, slate.ci_high]) / n_positions,
    )
