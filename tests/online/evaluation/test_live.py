"""Live scores of shadow policies (online/evaluation/live.py): the same numbers as the offline
driver over the same rounds, feedback joined in any order, the window bounded."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from typing import Any

import numpy as np
import pytest

from encoders.hashing import HashingEncoder
from online.catalog import Catalog
from online.config import LeaderboardConfig
from online.engine import Engine, EngineConfig
from online.evaluation.assessment import ReliabilityRule
from online.evaluation.driver import DriverConfig, PolicyVariant, evaluate_log
from online.evaluation.live import LiveWindow, score_shadow, standings
from online.evaluation.rounds import Feedback, ItemBatch, LogCounts, LoggedRound, iter_log
from online.events import Click, Impression, Item, ShownItem
from online.policies import make_policy
from online.policies.linear_ts import LinearTSParams
from online.simulation import Simulator, SimulatorConfig
from online.simulation.served_log import served_log
from online.state import InMemoryStore

ENCODER = HashingEncoder(dim=8)
WORLD = SimulatorConfig(n_items=120, n_users=40, n_candidates=25, k=5, horizon=260, seed=4)


def embed(items: Any) -> np.ndarray:
    return ENCODER.encode([i.text() for i in items])


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def log() -> list[Any]:
    """A linear TS logger (support mix 0.05, 64 draws) serving the simulator, as the worker does."""
    engine = Engine(make_policy("linear_ts"), InMemoryStore(), Catalog(dim=8), np.random.default_rng(1))
    return served_log(Simulator(WORLD), engine, embed, WORLD.horizon)


def shadow_policy() -> Any:
    return make_policy("linear_ts", LinearTSParams(exploration=1.0))


def test_the_window_gives_the_driver_s_estimates_for_a_learning_shadow(log: list[Any]) -> None:
    """Round by round as the worker goes (score at the slate, feedback, close, then learn), the
    live window's estimates and weights equal the offline driver's over the same log: one code
    path (intervals differ only by the bootstrap draws: DM is left out live)."""
    seed = 3
    offline = evaluate_log(log, [PolicyVariant(shadow_policy(), label="explore")], embed, 8,
                           config=DriverConfig(seed=seed, n_bootstrap=200)).policy("explore")
    catalog = Catalog(dim=8)
    engine = Engine(shadow_policy(), InMemoryStore(), catalog, np.random.default_rng([seed, 0]),
                    config=EngineConfig())
    window = LiveWindow(["explore"], LeaderboardConfig(close_after_s=0.0, window_rounds=10_000))
    for step in iter_log(log, LogCounts()):
        if isinstance(step, ItemBatch):
            catalog.upsert(step.items, embed(step.items))
        elif isinstance(step, Feedback):
            engine.observe([step.event])
        else:
            assert isinstance(step, LoggedRound) and step.slate is not None and step.impression is not None
            window.open(step.request, step.slate, catalog.index, {"explore": score_shadow(engine, step.request,
                                                                                          step.slate)})
            for event in step.feedback():
                window.observe(event)
            assert window.close_due() == 1
            engine.observe(step.feedback())
    live = standings(window.rounds(), ["explore"], {"explore": "v"}, n_bootstrap=200, seed=seed).shadows[0]
    assert window.counts.closed == len(window.rounds()) == WORLD.horizon
    for name in ("ips", "snips", "dr", "replay", "slate_iips", "slate_rips", "slate_sips"):
        assert live.estimates[name].value == pytest.approx(offline.estimates[name].value, rel=1e-12), name
        assert live.estimates[name].n == offline.estimates[name].n
    assert "dm" in offline.estimates and "dm" not in live.estimates
    assert live.assessment is not None and offline.assessment.dr_minus_dm is not None
    for name in ("ips", "slate_rips", "slate_sips"):
        ours, theirs = live.assessment.diagnostics[name], offline.assessment.diagnostics[name]
        assert (ours.ess, ours.max_weight, ours.mean_weight) == pytest.approx(
            (theirs.ess, theirs.max_weight, theirs.mean_weight), rel=1e-12)
        assert ours.floor_share == theirs.floor_share
    assert live.assessment.support == offline.assessment.support
    assert live.assessment.dr_minus_dm is not None
    assert live.assessment.dr_minus_dm.value == pytest.approx(offline.assessment.dr_minus_dm.value, rel=1e-12)
    assert live.read == offline.assessment.read


def rounds_of(log: list[Any], n: int) -> list[LoggedRound]:
    return [s for s in iter_log(log, LogCounts()) if isinstance(s, LoggedRound)][:n]


def uniform_window(log: list[Any], settings: LeaderboardConfig, clock: Clock) -> tuple[LiveWindow, Catalog, Engine]:
    catalog = Catalog(dim=8)
    items = [e for e in log if isinstance(e, Item)]
    catalog.upsert(items, embed(items))
    engine = Engine(make_policy("uniform_random"), InMemoryStore(), catalog, np.random.default_rng(0))
    return LiveWindow(["uniform"], settings, clock=clock), catalog, engine


def test_feedback_joins_in_any_order_once_and_rounds_close_after_their_delay(log: list[Any]) -> None:
    clock = Clock()
    window, catalog, engine = uniform_window(log, LeaderboardConfig(close_after_s=5.0), clock)
    first, second, third = rounds_of(log, 3)
    for round_ in (first, second, third):
        assert round_.slate is not None
        window.open(round_.request, round_.slate, catalog.index,
                    {"uniform": score_shadow(engine, round_.request, round_.slate), "not-here": None})
    slate = first.slate
    assert slate is not None and first.impression is not None
    top, other = slate.items[0].item_id, slate.items[1].item_id
    click = Click(event_id="c1", request_id=first.request.request_id, user_id=first.request.user_id, item_id=top,
                  time=first.request.time + timedelta(seconds=2))
    window.observe(click)  # before its impression
    window.observe(click)  # a duplicate: counted once
    window.observe(click.model_copy(update={"event_id": "c2", "item_id": other}))
    shown = tuple(ShownItem(item_id=i.item_id, position=i.position) for i in slate.items[:3])  # no propensities
    window.observe(first.impression.model_copy(update={"shown": shown}))
    assert second.impression is not None and second.slate is not None
    swapped = (ShownItem(item_id=second.slate.items[1].item_id, position=0),)
    window.observe(second.impression.model_copy(update={"shown": swapped}))  # not at its slate position
    assert window.counts.inconsistent == 1 and window.pending == 2
    assert window.close_due() == 0  # 5 s have not passed
    clock.now = 5.0
    assert window.close_due() == 1 and window.pending == 1  # the third still waits for its impression
    [closed] = window.rounds()
    assert closed.side.rewards.tolist() == [1.0, 1.0, 0.0] and closed.side.positions.tolist() == [0, 1, 2]
    assert closed.side.pscores.tolist() == [i.propensity for i in slate.items[:3]]  # from the slate
    assert closed.side.slate is not None and closed.side.slate.candidates is None  # compacted
    assert closed.side.slate.n_candidates == len(first.request.candidates or ())
    assert set(closed.terms) == {"uniform"}
    assert closed.terms["uniform"] is not None and closed.terms["uniform"].eval_probs.shape == (3,)
    window.observe(click.model_copy(update={"event_id": "c3"}))  # after its round closed
    window.observe(Impression(event_id="x", request_id="never", user_id="u", shown=(ShownItem(item_id=top,
                                                                                              position=0),)))
    assert (window.counts.late_clicks, window.counts.unmatched_feedback) == (1, 1)


def fill(log: list[Any], settings: LeaderboardConfig, n: int) -> LiveWindow:
    window, catalog, engine = uniform_window(log, settings, Clock())
    for round_ in rounds_of(log, n):
        assert round_.slate is not None
        window.open(round_.request, round_.slate, catalog.index,
                    {"uniform": score_shadow(engine, round_.request, round_.slate)})
        for event in round_.feedback():
            window.observe(event)
        window.close_due()
    return window


def test_the_window_keeps_the_last_rounds_within_its_event_time_and_pending_is_bounded(log: list[Any]) -> None:
    times = [r.request.time.timestamp() for r in rounds_of(log, 100)]
    by_count = fill(log, LeaderboardConfig(close_after_s=0.0, window_rounds=40), 100)
    assert [r.time for r in by_count.rounds()] == times[-40:] and by_count.counts.evicted == 60
    by_time = fill(log, LeaderboardConfig(close_after_s=0.0, window_s=10.0), 100)
    assert [r.time for r in by_time.rounds()] == [t for t in times if t >= times[-1] - 10.0]
    assert 0 < len(by_time.rounds()) < 40
    window, catalog, _ = uniform_window(log, LeaderboardConfig(max_pending=3), Clock())
    for round_ in rounds_of(log, 5):
        assert round_.slate is not None
        window.open(round_.request, round_.slate, catalog.index, {"uniform": None})
    assert window.pending == 3 and window.counts.dropped_pending == 2


def test_standings_rank_reliable_shadows_first_and_flag_the_rest(log: list[Any]) -> None:
    """A uniform shadow on a log with the support mix: reliable, with an interval; a shadow that
    could rank none of the rounds: listed last, no estimate to read, the reason given."""
    clock = Clock()
    window, catalog, engine = uniform_window(log, LeaderboardConfig(close_after_s=0.0), clock)
    window = LiveWindow(["uniform", "broken"], window.settings, clock=clock)
    for round_ in rounds_of(log, WORLD.horizon):
        assert round_.slate is not None
        window.open(round_.request, round_.slate, catalog.index,
                    {"uniform": score_shadow(engine, round_.request, round_.slate), "broken": None})
        for event in round_.feedback():
            window.observe(event)
        window.close_due()
    board = standings(window.rounds(), ["broken", "uniform"], {"uniform": "u1"}, n_bootstrap=100,
                      rule=ReliabilityRule(precision=math.inf, max_round_share=0.1))  # a short window
    assert [s.name for s in board.shadows] == ["uniform", "broken"]
    uniform, broken = board.shadows
    assert uniform.read is not None and uniform.value is not None
    estimate = uniform.estimates[uniform.read]
    assert estimate.ci_low <= estimate.value <= estimate.ci_high and estimate.ci_high > estimate.ci_low
    assert broken.read is None and broken.unranked_rounds == WORLD.horizon
    assert broken.assessment is not None and "no support in 100% of rounds" in broken.assessment.why
    assert board.on_policy is not None and board.rounds == WORLD.horizon
    record = json.loads(json.dumps(board.to_dict(), allow_nan=False))  # finite or null, never NaN
    assert record["shadows"][0]["estimate"]["value"] == pytest.approx(uniform.value)
    assert record["shadows"][1]["estimates"]["dr"]["reliable"] is False
    strict = standings(window.rounds(), ["uniform"], {}, n_bootstrap=100).shadows[0]  # the default rule
    assert strict.read is None and strict.assessment is not None
    reasons = strict.assessment.verdicts["dr"].reasons
    assert any("of the total weight" in r for r in reasons), reasons  # 13 support-mix rounds of 260 carry it
    assert any("precision target ±10%" in r for r in reasons), reasons
    empty = standings([], ["uniform"], {}).to_dict()
    assert empty["rounds"] == 0 and empty["shadows"][0]["why"] == "no round in the window yet"
