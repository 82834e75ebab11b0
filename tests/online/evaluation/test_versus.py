"""The leaderboard's verdict on a shadow's difference from the served policy
(online/evaluation/versus.py), through the live window on the simulator, on the default window."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from encoders.hashing import HashingEncoder
from online.catalog import Catalog
from online.config import LeaderboardConfig
from online.engine import Engine
from online.evaluation.assessment import ReliabilityRule, Verdict
from online.evaluation.bootstrap import Estimate
from online.evaluation.live import LiveWindow, Standings, score_shadow, standings
from online.evaluation.versus import judge
from online.policies import make_policy
from online.simulation import Simulator, SimulatorConfig
from online.state import InMemoryStore

ENCODER = HashingEncoder(dim=16)
WARM_UP = 300


def board(served: str, shadows: dict[str, str], seed: int) -> Standings:
    """The standings of `shadows` (label -> policy) beside `served` after the default window
    (2,000 rounds, after WARM_UP), every engine learning all feedback, as the worker does."""
    settings = LeaderboardConfig(close_after_s=0.0)
    world = SimulatorConfig(n_items=300, n_users=100, n_candidates=20, k=5, seed=seed,
                            horizon=WARM_UP + settings.window_rounds)
    simulator, catalog = Simulator(world), Catalog(dim=16)
    engine = Engine(make_policy(served), InMemoryStore(), catalog, np.random.default_rng([seed, 1]))
    engines = {label: Engine(make_policy(name), InMemoryStore(), catalog, np.random.default_rng([seed, 2, i]))
               for i, (label, name) in enumerate(shadows.items())}
    items = simulator.initial_items()
    catalog.upsert(items, ENCODER.encode([i.text() for i in items]))
    window = LiveWindow(list(shadows), settings)
    for _ in range(world.horizon):
        request, arrived = simulator.next_request()
        if arrived:
            catalog.upsert(arrived, ENCODER.encode([i.text() for i in arrived]))
        slate = engine.rank(request)
        window.open(request, slate, catalog.index, {label: score_shadow(e, request, slate) for label, e in
                                                    engines.items()})
        outcome = simulator.respond(request, slate)
        feedback = [outcome.impression, *outcome.clicks]
        for event in feedback:
            window.observe(event)
        window.close_due()
        for learner in [engine, *engines.values()]:
            learner.observe(feedback)
    assert len(window.rounds()) == settings.window_rounds
    return standings(window.rounds(), list(shadows), {}, n_bootstrap=settings.n_bootstrap, seed=seed,
                     rule=ReliabilityRule(precision=settings.precision), min_difference=settings.min_difference)


def comparison(found: Standings, label: str) -> Any:
    [standing] = [s for s in found.shadows if s.name == label]
    assert standing.versus is not None
    return standing.versus


@pytest.mark.parametrize("seed", [1, 2])
def test_a_clearly_better_shadow_is_called_better_on_the_default_window(seed: int) -> None:
    """Bernoulli TS learns which items click (about +30% over uniform here); served uniformly at
    random, the board calls it better, with its difference and interval in the record. The old
    rule (each value within ±10%) calls neither policy reliable on the same window."""
    found = board("uniform_random", {"beta": "bernoulli_ts"}, seed)
    versus = comparison(found, "beta")
    assert versus.verdict == "better", versus
    difference = versus.difference
    assert 0 < difference.ci_low <= difference.value <= difference.ci_high
    assert versus.relative[0] == pytest.approx(difference.value / versus.served)
    assert found.shadows[0].read is None  # the old board's only word: unreliable
    [row] = json.loads(json.dumps(found.to_dict(), allow_nan=False))["shadows"]
    assert row["versus_served"]["verdict"] == "better"
    assert row["versus_served"]["difference"]["ci_low"] == pytest.approx(difference.ci_low)
    assert row["versus_served"]["relative"]["value"] == pytest.approx(versus.relative[0])


@pytest.mark.parametrize("served", ["uniform_random", "linear_ts"])
def test_a_shadow_identical_to_the_served_policy_is_never_called_different(served: str) -> None:
    """The same policy (its own draws: Monte Carlo propensities for linear TS, exact for uniform)
    beside the served one, over several seeds: never called better or worse."""
    for seed in (0, 1, 2):
        versus = comparison(board(served, {"same": served}, seed), "same")
        assert versus.verdict in ("tied", "undecided"), (seed, versus)


def test_the_verdict_reads_the_interval_the_margin_and_the_weights() -> None:
    rule, fine = ReliabilityRule(precision=0.10), Verdict(False, ("imprecise: ...",), imprecise=True)

    def call(low: float, high: float, dr: Verdict | None = fine) -> str:
        return judge(Estimate("d", (low + high) / 2, low, high, 100), 1.0, dr, rule, min_difference=0.02).verdict

    assert call(0.03, 0.2) == "better" and call(-0.2, -0.03) == "worse"
    assert call(0.01, 0.2) == "undecided"  # above 0, not by the margin
    assert call(-0.05, 0.08) == "tied" and call(-0.05, 0.2) == "undecided"
    heavy = Verdict(False, ("one round carries 5% of the total weight", "imprecise: ..."), imprecise=True)
    assert call(0.1, 0.5, heavy) == "unreliable" and call(0.1, 0.5, None) == "unreliable"
    undecided = judge(Estimate("d", 0.05, -0.05, 0.15, 100), 1.0, fine, rule, min_difference=0.02)
    assert undecided.rounds_needed == pytest.approx(min((0.1 / 0.1) ** 2, (0.1 / 0.03) ** 2))
