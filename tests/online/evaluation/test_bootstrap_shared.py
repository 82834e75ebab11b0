"""bootstrap_ratios: k statistics from one resample, each equal to its own bootstrap_ratio."""

import numpy as np
import pytest

from online.evaluation.bootstrap import bootstrap_ratio, bootstrap_ratios


def test_each_row_equals_bootstrap_ratio_with_the_same_seed() -> None:
    data = np.random.default_rng(0)
    numerators = np.stack([data.random(700) * (data.random(700) < 0.1), data.normal(size=700)])
    denominators = np.stack([data.random(700), np.ones(700)])
    shared = bootstrap_ratios(numerators, denominators, rng=np.random.default_rng(9), n_bootstrap=500)
    for row in range(2):
        single = bootstrap_ratio(numerators[row], denominators[row], rng=np.random.default_rng(9), n_bootstrap=500)
        assert shared[row] == pytest.approx(single, rel=1e-12, abs=1e-15)


def test_zero_denominators_give_nan_and_bad_shapes_are_refused() -> None:
    value, low, high = bootstrap_ratios(np.zeros((1, 5)), np.zeros((1, 5)), rng=np.random.default_rng(0))[0]
    assert np.isnan(value) and np.isnan(low) and np.isnan(high)
    with pytest.raises(ValueError, match="numerators, denominators"):
        bootstrap_ratios(np.zeros((2, 5)), np.zeros((1, 5)), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="n_bootstrap"):
        bootstrap_ratios(np.zeros((1, 5)), np.ones((1, 5)), rng=np.random.default_rng(0), n_bootstrap=0)
