"""The driver feeds each estimator the propensities it needs, from logs that `Engine.rank` wrote.

A fixed Plackett-Luce policy serves 3,000 slates of 3 out of 5 items through `Engine.rank`
(1,024 Monte Carlo draws, the support mix on); the log holds its slates (marginal and prefix
propensities) and the clicks of a world with exact values (synthetic_world.py). The driver
evaluates another fixed Plackett-Luce policy, also with its own Monte Carlo draws: every
estimate lies within 4 of its standard errors (from its 95% interval) of the exact value.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import synthetic_world as W

from online.engine import EngineConfig
from online.evaluation.driver import DriverConfig, evaluate_log
from online.events import Slate

WORLD = W.World(rel=np.array([0.9, 0.6, 0.4, 0.25, 0.1]), exam=np.array([1.0, 0.6, 0.35]))
LOGGER, TARGET = np.array([1.0, 2.0, 3.0, 4.0, 5.0]), np.array([6.0, 3.0, 1.5, 1.0, 0.5])
EPSILON, DRAWS, ROUNDS = 0.05, 1024, 3000


def embed(items: Any) -> np.ndarray:
    return np.ones((len(items), 2), dtype=np.float32)


@pytest.fixture(scope="module")
def log() -> list[Any]:
    return W.engine_log(WORLD, W.PlackettLuce(LOGGER, "logger"), ROUNDS, seed=5, n_draws=DRAWS, epsilon=EPSILON)


def test_logged_propensities_are_the_served_probabilities(log: list[Any]) -> None:
    """Each slate's recorded prefix propensities estimate the exact mixed Plackett-Luce ones
    (1,024 draws: Monte Carlo standard error <= 0.016), and slates are served at those rates."""
    slates = [e for e in log if isinstance(e, Slate)]
    all_slates = W.slates_of(5, 3)
    exact = W.mixed_prefix(LOGGER, all_slates, EPSILON)
    row = {tuple(s): i for i, s in enumerate(all_slates.tolist())}
    served = np.array([row[tuple(int(i.item_id[1:]) for i in s.items)] for s in slates])
    recorded = np.array([[i.prefix_propensity for i in s.items] for s in slates])
    assert np.abs(recorded - exact[served]).max() < 5 * np.sqrt(0.25 / DRAWS)
    marginals = W.marginals(exact[:, -1], all_slates, 5)
    recorded_marginal = np.array([[i.propensity for i in s.items] for s in slates])
    assert np.abs(recorded_marginal - marginals[all_slates[served], np.arange(3)]).max() < 5 * np.sqrt(0.25 / DRAWS)
    frequency = np.bincount(served, minlength=len(all_slates)) / len(slates)
    se = np.sqrt(exact[:, -1] * (1 - exact[:, -1]) / len(slates))
    assert np.all(np.abs(frequency - exact[:, -1]) < 4.5 * se + 1e-12)  # 60 slates: 4.5 se each
    assert all(s.support_epsilon == EPSILON and s.candidates is not None and len(s.candidates) == 5 for s in slates)


def test_driver_estimates_cover_the_exact_value(log: list[Any]) -> None:
    config = DriverConfig(engine=EngineConfig(n_draws=DRAWS, support_epsilon=EPSILON), n_bootstrap=400, seed=3)
    result = evaluate_log(log, [W.PlackettLuce(TARGET, "target")], embed, 2, config=config)
    estimates = result.policy("target").estimates
    per_slate = W.exact_value(WORLD, TARGET, EPSILON)
    for name, truth in [("slate_rips", per_slate), ("slate_sips", per_slate), ("slate_iips", per_slate),
                        ("ips", per_slate / 3), ("snips", per_slate / 3), ("dr", per_slate / 3)]:
        estimate = estimates[name]
        se = (estimate.ci_high - estimate.ci_low) / (2 * 1.96)
        assert abs(estimate.value - truth) < 4 * se, (name, estimate, truth)
    assert estimates["slate_sips"].n == ROUNDS
