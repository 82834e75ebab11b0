"""Incremental replay agrees with batch replay and is immutable."""

from __future__ import annotations

import numpy as np
import pytest

from online.evaluation import ReplayAccumulator, replay


def test_incremental_equals_batch_and_replay() -> None:
    generator = np.random.default_rng(5)
    logged = generator.integers(0, 3, size=300)
    chosen = generator.integers(0, 3, size=300)
    rewards = generator.binomial(1, 0.4, size=300).astype(float)
    state = ReplayAccumulator()
    for a, b, r in zip(logged.tolist(), chosen.tolist(), rewards.tolist(), strict=True):
        state = state.update(a, b, r)
    batch = ReplayAccumulator().update_batch(logged[:100], chosen[:100], rewards[:100])
    batch = batch.update_batch(logged[100:], chosen[100:], rewards[100:])
    assert state.n_seen == batch.n_seen == 300
    assert state.n_matched == batch.n_matched
    assert state.value == pytest.approx(batch.value)
    reference = replay(rewards, logged, chosen, rng=np.random.default_rng(0))
    assert state.value == pytest.approx(reference.value) and state.n_matched == reference.n
    assert state.match_rate == pytest.approx(state.n_matched / 300)
    estimate = state.estimate()
    assert estimate.ci_low < estimate.value < estimate.ci_high
    # normal interval ~ bootstrap interval
    assert estimate.half_width == pytest.approx(reference.half_width, rel=0.2)


def test_update_returns_a_new_state() -> None:
    start = ReplayAccumulator()
    after = start.update(1, 1, 1.0)
    assert start == ReplayAccumulator() and after.n_matched == 1
    assert np.isnan(start.value) and np.isnan(start.match_rate)
    assert np.isnan(after.estimate().ci_low)
    with pytest.raises(ValueError, match="reward"):
        start.update(0, 0, float("nan"))
    with pytest.raises(ValueError, match="confidence"):
        after.estimate(confidence=0.0)
