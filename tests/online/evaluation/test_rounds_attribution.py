"""Rounds of a replayed live log: other users' requests come between a request and its clicks
(`slatestream replay` orders events by event time), so a round stays open for its attribution
window instead of closing at the next request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from encoders.hashing import HashingEncoder
from online.catalog import Catalog
from online.engine import Engine
from online.evaluation.driver import DriverConfig, evaluate_log
from online.evaluation.rounds import Feedback, LogCounts, LoggedRound, iter_log
from online.events import Click, Impression, Item, RankRequest, ShownItem, Slate
from online.policies import make_policy
from online.simulation import Simulator, SimulatorConfig
from online.state import InMemoryStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ENCODER = HashingEncoder(dim=8)
RANK = {RankRequest: 0, Slate: 1, Impression: 2, Click: 3}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def interleaved() -> list[Any]:
    """Three users a second apart; each impression 0.2 s and each click 5 s after its request."""
    events: list[Any] = []
    for n in range(3):
        events.append(RankRequest(request_id=f"r{n}", user_id=f"u{n}", time=at(n)))
        events.append(Impression(event_id=f"e{n}", request_id=f"r{n}", user_id=f"u{n}", time=at(n + 0.2),
                                 shown=(ShownItem(item_id="a", position=0, propensity=0.5),)))
        events.append(Click(event_id=f"c{n}", request_id=f"r{n}", user_id=f"u{n}", item_id="a", time=at(n + 5)))
    return sorted(events, key=lambda e: (e.time, RANK[type(e)]))


def test_rounds_close_at_the_next_request_by_default_and_after_the_window_when_given() -> None:
    legacy = list(iter_log(interleaved(), LogCounts()))
    rounds = [s for s in legacy if isinstance(s, LoggedRound)]
    assert [len(r.clicks) for r in rounds] == [0, 0, 1]  # a click after the next request: stray
    assert sum(isinstance(s, Feedback) for s in legacy) == 2
    counts = LogCounts()
    windowed = list(iter_log(interleaved(), counts, attribution_s=60.0))
    assert [(s.request.request_id, len(s.clicks)) for s in windowed if isinstance(s, LoggedRound)] == [
        ("r0", 1), ("r1", 1), ("r2", 1)]  # in request order, each with its click
    assert counts.stray_feedback == 0 and counts.balanced()
    short = list(iter_log(interleaved(), LogCounts(), attribution_s=3.0))  # clicks 5 s late: outside
    assert [len(s.clicks) for s in short if isinstance(s, LoggedRound)] == [0, 0, 0]
    assert [s.impression is not None for s in short if isinstance(s, LoggedRound)] == [True] * 3
    with pytest.raises(ValueError, match="attribution_s"):
        list(iter_log([], LogCounts(), attribution_s=-1.0))


def test_a_replayed_live_log_evaluates_as_the_log_it_replays() -> None:
    """A logger serving the simulator (clicks 1-60 s after their request, requests 0.5 s apart),
    its log in replay order (event time): with an attribution window the driver's estimates equal
    those of the log grouped by round; without, every click is lost to the estimates."""
    world = SimulatorConfig(n_items=100, n_users=30, n_candidates=20, k=4, horizon=120, seed=2)
    simulator = Simulator(world)
    engine = Engine(make_policy("linear_ts"), InMemoryStore(), Catalog(dim=8), np.random.default_rng(0))
    items = simulator.initial_items()
    engine.add_items(items, ENCODER.encode([i.text() for i in items]))
    grouped: list[Any] = list(items)
    for _ in range(world.horizon):
        request, arrived = simulator.next_request()
        if arrived:
            engine.add_items(arrived, ENCODER.encode([i.text() for i in arrived]))
            grouped += arrived
        slate = engine.rank(request)
        outcome = simulator.respond(request, slate)
        grouped += [request, slate, outcome.impression, *outcome.clicks]
        engine.observe([outcome.impression, *outcome.clicks])
    replayed = [e for e in grouped if isinstance(e, Item)] + sorted(
        (e for e in grouped if not isinstance(e, Item)), key=lambda e: (e.time, RANK[type(e)]))

    def evaluate(log: list[Any], window: float | None) -> Any:
        return evaluate_log(log, ["uniform_random", "bernoulli_ts"], lambda i: ENCODER.encode([x.text() for x in i]),
                            8, config=DriverConfig(n_bootstrap=50, attribution_s=window))

    reference, ours, lost = evaluate(grouped, None), evaluate(replayed, 1800.0), evaluate(replayed, None)
    assert reference.counts.clicks > 0 and reference.counts.stray_feedback == 0
    assert ours.counts.stray_feedback == 0 and ours.on_policy.value == reference.on_policy.value
    for name in ("uniform_random", "bernoulli_ts"):
        for estimator in ("ips", "snips", "dr", "slate_rips"):
            assert ours.policy(name).estimates[estimator].value == pytest.approx(
                reference.policy(name).estimates[estimator].value, rel=1e-12, abs=1e-15), (name, estimator)
    assert lost.on_policy.value == 0.0 and lost.counts.stray_feedback == reference.counts.clicks
