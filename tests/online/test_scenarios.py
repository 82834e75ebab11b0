"""ScenarioRouter: scenarios routed to shared engines, shaped by their configuration."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from encoders.hashing import HashingEncoder
from online.catalog import Catalog
from online.config import SlatestreamConfig, parse_config
from online.engine import Engine, EngineConfig, RankError
from online.events import Click, Impression, Item, RankRequest, ShownItem, Slate
from online.policies import make_policy
from online.runner import EmbeddedRunner
from online.scenarios import ScenarioRouter
from online.state import InMemoryStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DIM = 8
ENCODER = HashingEncoder(dim=DIM, seed=3)
ITEMS = [Item(item_id=f"i{n}", fields={"title": f"item {n} colour {n % 4}"}, time=T0) for n in range(40)]
TWO = {"scenarios": {"feed": {"slate_size": 5}, "ad_slot": {"slate_size": 2, "candidates": "request"}}}


def embed(items: list[Item]) -> np.ndarray:
    return ENCODER.encode([item.text() for item in items])


def router(config: SlatestreamConfig, seed: int = 0) -> ScenarioRouter:
    routed = ScenarioRouter(config, InMemoryStore(), Catalog(dim=DIM), np.random.default_rng(seed))
    routed.add_items(ITEMS, embed(ITEMS))
    return routed


def request(n: int, scenario: str, **extra: object) -> RankRequest:
    return RankRequest(request_id=f"r{n}", user_id=f"u{n % 3}", scenario=scenario,
                       time=T0 + timedelta(seconds=n), **extra)  # type: ignore[arg-type]


def feedback(slate: Slate, n: int) -> list[Impression | Click]:
    shown = tuple(ShownItem(item_id=i.item_id, position=i.position, propensity=i.propensity) for i in slate.items)
    time = T0 + timedelta(seconds=n)
    return [Impression(event_id=f"e{n}", request_id=slate.request_id, user_id=slate.user_id,
                       scenario=slate.scenario, shown=shown, time=time),
            Click(event_id=f"c{n}", request_id=slate.request_id, user_id=slate.user_id, scenario=slate.scenario,
                  item_id=slate.items[0].item_id, time=time)]


def test_the_default_configuration_serves_like_a_bare_engine() -> None:
    routed = router(SlatestreamConfig(), seed=7)
    engine = Engine(make_policy("linear_ts"), InMemoryStore(), Catalog(dim=DIM), np.random.default_rng(7),
                    config=EngineConfig())
    engine.add_items(ITEMS, embed(ITEMS))
    for n in range(15):
        candidates = tuple(f"i{(n + j) % 40}" for j in range(12)) if n % 2 else None
        a = routed.rank(request(n, "homepage", candidates=candidates))
        b = engine.rank(request(n, "homepage", candidates=candidates))
        assert a.items == b.items
        routed.observe(feedback(a, n))
        engine.observe(feedback(b, n))


def test_scenarios_shape_the_request() -> None:
    routed = router(parse_config(TWO))
    assert len(routed.rank(request(0, "feed")).items) == 5  # slate_size
    assert len(routed.rank(request(1, "feed", k=7)).items) == 7  # the request's own k wins
    with pytest.raises(RankError, match="scenario 'ad_slot' takes its candidates from the request"):
        routed.rank(request(2, "ad_slot"))
    slate = routed.rank(request(3, "ad_slot", candidates=("i1", "i2", "i3", "i4")))
    assert len(slate.items) == 2 and {i.item_id for i in slate.items} <= {"i1", "i2", "i3", "i4"}
    with pytest.raises(RankError, match="scenario 'homepage' is not configured"):
        routed.rank(request(4, "homepage"))


def test_retrieval_ignores_the_request_candidates() -> None:
    routed = router(parse_config({"scenarios": {"feed": {"candidates": "retrieval", "retrieval_size": 6}}}))
    slate = routed.rank(request(0, "feed", candidates=("i1", "i2"), k=4))
    assert len(slate.items) == 4  # more than the two candidates the request named


def test_scenarios_share_one_engine_and_one_user_state() -> None:
    routed = router(parse_config(TWO))
    assert len(routed.engines) == 1
    engine = routed.engines["linear_ts"]
    for n in range(6):
        routed.observe(feedback(routed.rank(request(n, "feed")), n))
    state = engine.load_user("u0")
    assert state is not None and state.reward_total == 2.0
    assert set(engine.global_state.scenarios) == {"feed"}  # ad_slot has no rows yet
    routed.observe(feedback(routed.rank(request(9, "ad_slot", candidates=("i1", "i2", "i3"))), 9))
    assert set(engine.global_state.scenarios) == {"feed", "ad_slot"}
    assert engine.load_user("u0").reward_total == 3.0  # one state per user, whatever the scenario


def test_unknown_scenario_feedback_is_rejected_with_its_reason() -> None:
    routed = router(parse_config(TWO))
    slate = routed.rank(request(0, "feed"))
    stray = [e.model_copy(update={"scenario": "homepage"}) for e in feedback(slate, 0)]
    result = routed.observe([*feedback(slate, 0), *stray])
    assert result.learned_rows == 6 and len(result.rejected) == 2
    assert all("unknown scenario 'homepage'" in reason for _, reason in result.rejected)


def test_the_embedded_runner_drives_a_router() -> None:
    routed = ScenarioRouter(parse_config(TWO), InMemoryStore(), Catalog(dim=DIM), np.random.default_rng(0))
    events: list[object] = list(ITEMS)
    events += [request(n, "feed") for n in range(3)] + [request(3, "ad_slot")]
    counts = EmbeddedRunner(routed, embed).run(events)  # type: ignore[arg-type]
    assert counts.ranked == 3 and counts.rejected == 1 and counts.items == 40 and counts.balanced()
