"""The simulator: click model, oracle, arrivals, drift, determinism and event validity."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from online.events import encode_event
from online.simulation import Simulator, SimulatorConfig, examination
from online.simulation.calibration import make_slate, measure

SMALL = SimulatorConfig(n_users=200, n_candidates=30, horizon=400, seed=11)


def random_slate_ids(candidates: tuple[str, ...], k: int, rng: np.random.Generator) -> list[str]:
    return [candidates[int(i)] for i in rng.permutation(len(candidates))[:k]]


def test_examination_decreases_with_position() -> None:
    for eta in (0.5, 1.0, 2.0):
        values = examination(np.arange(30), eta)
        assert values[0] == 1.0
        assert (np.diff(values) < 0).all()
    assert (examination(np.arange(5), 0.0) == 1.0).all()
    with pytest.raises(ValueError, match="positions"):
        examination([-1], 1.0)


def test_probabilities_are_in_open_unit_interval_and_follow_position() -> None:
    simulator = Simulator(SMALL)
    ids = [f"i{row:05d}" for row in range(SMALL.n_items)]
    for user in ("u0000", "u0017", "u0199"):
        top = simulator.click_probabilities(user, ids, [0] * len(ids))
        assert ((top > 0) & (top < 1)).all()
        assert np.allclose(top, simulator.relevance(user, ids))
        lower = simulator.click_probabilities(user, ids, [9] * len(ids))
        assert np.allclose(lower, top / 10)
    with pytest.raises(ValueError, match="item_ids"):
        simulator.click_probabilities("u0000", ["nope"], [0])
    with pytest.raises(ValueError, match="user_id"):
        simulator.click_probabilities("u9999", ids[:1], [0])
    with pytest.raises(ValueError, match="positions"):
        simulator.click_probabilities("u0000", ids[:2], [0])


def test_oracle_beats_every_random_slate_over_the_same_candidates() -> None:
    simulator = Simulator(SMALL)
    rng = np.random.default_rng(0)
    for _ in range(20):
        request, _ = simulator.next_request()
        assert request.candidates is not None
        oracle = simulator.oracle_slate(request)
        assert len(oracle) == request.k and set(oracle) <= set(request.candidates)
        relevance = simulator.relevance(request.user_id, oracle)
        assert (np.diff(relevance) <= 0).all()
        best = simulator.click_probabilities(request.user_id, oracle, range(len(oracle))).sum()
        for _ in range(50):
            ids = random_slate_ids(request.candidates, int(rng.integers(1, request.k + 1)), rng)
            positions = rng.permutation(request.k)[: len(ids)]
            assert simulator.click_probabilities(request.user_id, ids, positions).sum() <= best + 1e-12
        outcome = simulator.respond(request, make_slate(request, oracle))
        assert outcome.oracle_expected_clicks == pytest.approx(best)
        assert outcome.expected_clicks == pytest.approx(best)
        assert outcome.regret == pytest.approx(0.0, abs=1e-12)


def test_new_items_arrive_steadily_and_all_by_the_horizon() -> None:
    simulator = Simulator(SMALL)
    initial = simulator.initial_items()
    assert len(initial) == round(0.75 * SMALL.n_items) == simulator.n_released
    assert all(item.time == SMALL.start for item in initial)
    seen = {item.item_id for item in initial}
    arrivals_per_half = [0, 0]
    fresh_candidates = 0
    previous = SMALL.start
    for index in range(SMALL.horizon):
        request, arrived = simulator.next_request()
        for item in arrived:
            assert item.item_id not in seen
            assert previous < item.time < request.time
        seen |= {item.item_id for item in arrived}
        arrivals_per_half[2 * index // SMALL.horizon] += len(arrived)
        assert request.candidates is not None and set(request.candidates) <= seen
        fresh_candidates += sum(int(c[1:]) >= len(initial) for c in request.candidates)
        previous = request.time
    assert len(seen) == SMALL.n_items == simulator.n_released
    assert abs(arrivals_per_half[0] - arrivals_per_half[1]) <= 2
    assert fresh_candidates > 0.05 * SMALL.horizon * SMALL.n_candidates  # fresh ones are mixed in
    request, arrived = simulator.next_request()
    assert arrived == []


def test_explicit_release_interval() -> None:
    config = replace(SMALL, new_item_every=2.0)
    schedule = config.release_schedule()
    assert schedule[:3].tolist() == [1, 3, 5]
    assert len(schedule) == SMALL.n_items - config.n_initial_items


def test_drift_moves_probabilities_slowly() -> None:
    config = replace(SMALL, drift_every=5, drift_scale=0.03)
    simulator = Simulator(config)
    ids = [f"i{row:05d}" for row in range(0, config.n_items, 7)]
    before = simulator.relevance("u0003", ids)
    for _ in range(6):  # one drift step, before request 5
        simulator.next_request()
    after_one = simulator.relevance("u0003", ids)
    for _ in range(5 * 39):  # 40 steps in all
        simulator.next_request()
    after_many = simulator.relevance("u0003", ids)
    step = np.abs(np.log(after_one / before))  # ~ |log-odds change| at low probabilities
    assert 0 < step.mean() < 0.1
    assert np.abs(np.log(after_many / before)).mean() > 3 * step.mean()
    still = Simulator(replace(config, drift_scale=0.0))
    for _ in range(50):
        still.next_request()
    assert np.array_equal(still.relevance("u0003", ids), before)


def test_empirical_ctr_of_random_slates_matches_true_probabilities() -> None:
    simulator = Simulator(SMALL)
    rng = np.random.default_rng(1)
    clicks = expected = variance = 0.0
    for _ in range(SMALL.horizon):
        request, _ = simulator.next_request()
        assert request.candidates is not None
        ids = random_slate_ids(request.candidates, request.k, rng)
        p = simulator.click_probabilities(request.user_id, ids, range(len(ids)))
        outcome = simulator.respond(request, make_slate(request, ids))
        assert outcome.expected_clicks == pytest.approx(p.sum())
        assert sum(outcome.item_clicked) == len(outcome.clicks)
        clicks += sum(outcome.item_clicked)
        expected += p.sum()
        variance += (p * (1 - p)).sum()
    assert abs(clicks - expected) < 4 * np.sqrt(variance)


def test_default_world_ctr_targets() -> None:
    figures = measure(replace(SimulatorConfig(), n_users=300), 300, np.random.default_rng(0))
    assert 0.02 < figures["random_ctr"] < 0.05
    assert figures["oracle_over_random"] > 3
    assert 1.2 < figures["population_over_random"] < figures["oracle_over_random"]


def stream(config: SimulatorConfig, n: int, slate_seed: int) -> list[bytes]:
    simulator = Simulator(config)
    rng = np.random.default_rng(slate_seed)
    events = [encode_event(item) for item in simulator.initial_items()]
    for _ in range(n):
        request, arrived = simulator.next_request()
        events += [encode_event(request)] + [encode_event(item) for item in arrived]
        assert request.candidates is not None
        outcome = simulator.respond(request, make_slate(request, random_slate_ids(request.candidates, 10, rng)))
        events += [encode_event(outcome.impression)] + [encode_event(click) for click in outcome.clicks]
    return events


def test_same_seed_same_stream_different_seed_different_stream() -> None:
    first = stream(SMALL, 60, 0)
    assert first == stream(SMALL, 60, 0)
    assert first != stream(replace(SMALL, seed=12), 60, 0)


def test_requests_do_not_depend_on_the_slates_shown() -> None:
    def requests(slate_seed: int) -> list[bytes]:
        return [e for e in stream(SMALL, 40, slate_seed) if b'"rank_request"' in e]

    assert requests(0) == requests(1)


def test_events_are_valid_timed_and_uniquely_identified() -> None:
    simulator = Simulator(replace(SMALL, n_candidates=None))
    rng = np.random.default_rng(2)
    event_ids: set[str] = set()
    for index in range(150):
        request, _ = simulator.next_request()
        assert request.candidates is None and request.k == 10 and request.scenario == "feed"
        assert request.request_id == f"r{index:06d}" and re.fullmatch(r"u\d{4}", request.user_id)
        assert request.time.tzinfo is not None and request.time.utcoffset() == timedelta(0)
        assert request.time == datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=0.5 * (index + 1))
        released = [f"i{row:05d}" for row in range(simulator.n_released)]
        oracle = simulator.oracle_slate(request)
        assert set(oracle) <= set(released)
        ids = random_slate_ids(tuple(released), 10, rng)
        outcome = simulator.respond(request, make_slate(request, ids, propensity=0.5))
        assert [(s.item_id, s.position, s.propensity) for s in outcome.impression.shown] == [
            (i, p, 0.5) for p, i in enumerate(ids)]
        assert outcome.expected_clicks <= outcome.oracle_expected_clicks + 1e-12
        for click in outcome.clicks:
            delay = (click.time - outcome.impression.time).total_seconds()
            assert 1.0 <= delay <= 60.0 and click.time.utcoffset() == timedelta(0)
            assert click.item_id in ids and click.request_id == request.request_id
        ids_now = [outcome.impression.event_id] + [c.event_id for c in outcome.clicks]
        assert not event_ids & set(ids_now)
        event_ids |= set(ids_now)


def test_respond_rejects_invalid_slates() -> None:
    simulator = Simulator(SMALL)
    request, _ = simulator.next_request()
    other, _ = simulator.next_request()
    assert request.candidates is not None and other.candidates is not None
    outside = next(i for i in other.candidates if i not in request.candidates)
    with pytest.raises(ValueError, match=r"slate\.request_id"):
        simulator.respond(request, make_slate(other, list(other.candidates[:3])))
    with pytest.raises(ValueError, match=r"slate\.items"):
        simulator.respond(request, make_slate(request, [request.candidates[0], outside]))
    with pytest.raises(ValueError, match=r"slate\.items"):
        simulator.respond(request, make_slate(request, list(request.candidates[:11])))
    slate = make_slate(request, list(request.candidates[:2]))
    same_position = slate.model_copy(update={"items": tuple(i.model_copy(update={"position": 0}) for i in slate.items)})
    with pytest.raises(ValueError, match="position"):
        simulator.respond(request, same_position)


@pytest.mark.parametrize(
    ("field", "value"),
    [("n_items", 0), ("initial_item_fraction", 0.0), ("k", 0), ("n_candidates", 0), ("eta", -1.0),
     ("drift_every", 0), ("horizon", 0), ("seconds_per_request", 0.0), ("start", datetime(2026, 1, 1)),  # noqa: DTZ001
     ("fresh_fraction", 1.5)],
)
def test_config_errors_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        SimulatorConfig(**{field: value})  # type: ignore[arg-type]


def test_explicit_generator_replaces_the_seed() -> None:
    a = Simulator(SMALL, np.random.default_rng(99))
    b = Simulator(replace(SMALL, seed=5), np.random.default_rng(99))
    assert a.catalog.titles == b.catalog.titles
    assert a.next_request()[0] == b.next_request()[0]
