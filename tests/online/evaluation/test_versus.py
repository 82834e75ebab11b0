"""The leaderboard's verdict on a shadow's difference from the served policy
(online/evaluation/versus.py), through the live window on the simulator, on the default window."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from encoders.hashing import HashingEncoder
from online.config import LeaderboardConfig
from online.evaluation.assessment import ReliabilityRule, Verdict
from online.evaluation.bootstrap import Estimate
from online.evaluation.live import ClosedRound, Standings, standings
from online.evaluation.versus import judge
from online.simulation import SimulatorConfig
from online.simulation.shadow_window import shadow_window_rounds

ENCODER = HashingEncoder(dim=16)
WARM_UP = 300


def board(served: str, shadows: dict[str, str], seed: int) -> Standings:
    """The standings of `shadows` (label -> policy) beside `served` after the default window
    (2,000 rounds, after WARM_UP), every engine learning all feedback, as the worker does."""
    settings = LeaderboardConfig(close_after_s=0.0)
    return standings(window_rounds(served, shadows, seed), list(shadows), {}, n_bootstrap=settings.n_bootstrap,
                     seed=seed, rule=ReliabilityRule(precision=settings.precision),
                     min_difference=settings.min_difference)


def window_rounds(served: str, shadows: dict[str, str], seed: int) -> list[ClosedRound]:
    """The default window's rounds of `board` (see there): the small world, after WARM_UP rounds."""
    settings = LeaderboardConfig(close_after_s=0.0)
    world = SimulatorConfig(n_items=300, n_users=100, n_candidates=20, k=5, seed=seed,
                            horizon=WARM_UP + settings.window_rounds)
    rounds = shadow_window_rounds(served, shadows, world, ENCODER.encode, 16, settings)
    assert len(rounds) == settings.window_rounds
    return rounds


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


SEEDS = (0, 1, 2, 3, 4)
CONFIDENCE = 0.95


def most_misses(n: int, confidence: float = CONFIDENCE) -> int:
    """The most of n calibrated intervals (each missing with probability 1 - confidence,
    independently) that miss, but for a chance under 1%: the 99% quantile of Binomial(n, 1 - c)."""
    miss, total = 1.0 - confidence, 0.0
    for misses in range(n + 1):
        total += math.comb(n, misses) * miss**misses * (1.0 - miss) ** (n - misses)
        if total >= 0.99:
            return misses
    return n


@pytest.mark.parametrize(("served", "tolerance"), [("uniform_random", 0.005), ("linear_ts", 0.025)])
def test_a_shadow_identical_to_the_served_policy_is_centred_on_0(served: str, tolerance: float) -> None:
    """The same policy beside the served one (its own generator) over fixed seeds: its paired
    difference is centred on 0 (the mean over seeds within `tolerance` of the served value: about
    4 standard errors of the measured spread, 0.35% per seed for uniform, 1.2-1.5% for linear TS),
    its 95% intervals miss 0 no more often than calibrated intervals would (`most_misses`), and it
    is never called better or worse."""
    relative, misses = [], 0
    for seed in SEEDS:
        versus = comparison(board(served, {"same": served}, seed), "same")
        relative.append(versus.relative[0])
        misses += not versus.difference.covers(0.0)
        assert versus.verdict in ("tied", "undecided"), (seed, versus)
    assert abs(float(np.mean(relative))) <= tolerance, relative
    assert misses <= most_misses(len(SEEDS)), relative


def test_an_identical_uniform_shadow_weighs_every_item_exactly_1() -> None:
    """Served uniformly at random, the slates record the exact probabilities 1/n (not Monte Carlo
    shares of 64 draws), so a uniform shadow's weight pi_e / pi_0 is exactly 1 on every shown item,
    its difference is the reward model's term alone, its interval within ±2% of the served value on
    every seed (measured over seeds 0-39: at most 1.5%; before: half-widths of 9% on average, the
    weights' standard deviation 1), called tied, and its DR value reliable."""
    for seed in SEEDS:
        rounds = window_rounds("uniform_random", {"same": "uniform_random"}, seed)
        logged = np.concatenate([found.side.pscores for found in rounds])
        shadow = np.concatenate([found.terms["same"].eval_probs for found in rounds])  # type: ignore[union-attr]
        assert np.all(shadow / logged == 1.0), seed
        found = standings(rounds, ["same"], {}, n_bootstrap=200, seed=seed, confidence=CONFIDENCE)
        versus = comparison(found, "same")
        low, high = versus.relative[1:]
        assert -0.02 <= low and high <= 0.02, (seed, versus)
        assert versus.verdict == "tied" and found.shadows[0].read == "dr", (seed, versus)


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
