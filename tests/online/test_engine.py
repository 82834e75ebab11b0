"""Engine: retrieval without candidates, context joins for clicks, rejection, forgetting."""

from datetime import UTC, datetime

import numpy as np
import pytest

from online.catalog import Catalog
from online.engine import Engine, EngineConfig, RankError
from online.events import Click, Impression, Item, RankRequest, ShownItem
from online.features import ContextCrossFeatures
from online.policies.linear_ts import LinearThompsonSampling, LinearTSParams
from online.state import InMemoryStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def catalog_engine(n: int = 40, dim: int = 4, policy: LinearThompsonSampling | None = None,
                   **kwargs: object) -> Engine:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    engine = Engine(policy or LinearThompsonSampling(), InMemoryStore(), Catalog(dim=dim), np.random.default_rng(1),
                    **kwargs)  # type: ignore[arg-type]
    engine.add_items([Item(item_id=f"i{i}", fields={"t": str(i)}, time=T0) for i in range(n)], vectors)
    return engine


def test_retrieval_returns_the_items_closest_to_the_user_vector() -> None:
    engine = catalog_engine(config=EngineConfig(retrieval_size=5, n_draws=8))
    target = engine.catalog.vectors[7]
    clicks: list[Impression | Click] = []
    for n in range(30):  # the user clicks item i7 every time it is shown
        clicks.append(Impression(event_id=f"e{n}", request_id=f"q{n}", user_id="u", time=T0,
                                 shown=(ShownItem(item_id="i7", position=0),)))
        clicks.append(Click(event_id=f"c{n}", request_id=f"q{n}", user_id="u", item_id="i7", time=T0))
    engine.observe(clicks)
    rows = engine.candidate_rows(RankRequest(request_id="r", user_id="u", time=T0), engine.load_user("u"))
    assert len(rows) == 5 and 7 in rows.tolist()
    expected = np.argsort(-(engine.catalog.vectors @ target))[:5]
    assert len(set(rows.tolist()) & set(expected.tolist())) >= 3


def test_retrieval_follows_the_scenario_offset() -> None:
    """In scenario "ad" every user clicks item i7; in "feed" nobody clicks. The learned "ad"
    offset points at i7, so retrieval for "ad" finds it and retrieval for "feed" need not."""
    policy = LinearThompsonSampling(LinearTSParams(scenario_offsets=("ad",)))
    engine = catalog_engine(policy=policy, config=EngineConfig(retrieval_size=5, n_draws=8))
    target = engine.catalog.vectors[7]
    events: list[Impression | Click] = []
    for n in range(60):
        scenario, shown = ("ad", "i7") if n % 2 else ("feed", f"i{n % 40}")
        events.append(Impression(event_id=f"e{n}", request_id=f"q{n}", user_id=f"u{n % 6}", scenario=scenario,
                                 time=T0, shown=(ShownItem(item_id=shown, position=0),)))
        if scenario == "ad":
            events.append(Click(event_id=f"c{n}", request_id=f"q{n}", user_id=f"u{n % 6}", item_id="i7",
                                scenario="ad", time=T0))
    engine.observe(events)
    fresh = engine.load_user("new")
    ad = engine.candidate_rows(RankRequest(request_id="a", user_id="new", scenario="ad", time=T0), fresh)
    feed = engine.candidate_rows(RankRequest(request_id="f", user_id="new", scenario="feed", time=T0), fresh)
    nearest = set(np.argsort(-(engine.catalog.vectors @ target))[:5].tolist())
    assert 7 in ad.tolist() and len(set(ad.tolist()) & nearest) >= 3
    assert len(set(ad.tolist()) & nearest) > len(set(feed.tolist()) & nearest)


def test_clicks_reuse_the_context_of_their_request() -> None:
    engine = catalog_engine(features=ContextCrossFeatures(keys=("young",)))
    request = RankRequest(request_id="r", user_id="u", context={"young": 1.0}, k=3, time=T0)
    slate = engine.rank(request)
    click = Click(event_id="c", request_id="r", user_id="u", item_id=slate.items[0].item_id, time=T0)
    batch, rejected = engine.feedback_batch([click])
    assert not rejected
    expected = engine.features.transform(engine.catalog.vectors[engine.catalog.rows([click.item_id])], {"young": 1.0})
    np.testing.assert_allclose(batch.features, expected)


def test_unknown_items_are_rejected_with_a_reason() -> None:
    engine = catalog_engine()
    bad = Click(event_id="c", request_id="r", user_id="u", item_id="ghost", time=T0)
    result = engine.observe([bad])
    assert result.learned_rows == 0 and result.rejected == ((bad, "unknown item id 'ghost'"),)
    with pytest.raises(RankError, match="no candidate"):
        engine.rank(RankRequest(request_id="r", user_id="u", candidates=("ghost",), time=T0))


def test_forget_removes_the_user_state() -> None:
    engine = catalog_engine()
    engine.observe([Impression(event_id="e", request_id="r", user_id="u", time=T0,
                               shown=(ShownItem(item_id="i1", position=0),))])
    assert engine.store.get(engine.user_key("u")) is not None
    engine.forget("u")
    assert engine.store.get(engine.user_key("u")) is None and engine.load_user("u") is None


def test_an_empty_batch_with_context_features_learns_nothing() -> None:
    catalog = Catalog(dim=2)
    catalog.upsert([Item(item_id="i0", fields={"t": "x"})], np.ones((1, 2), dtype=np.float32))
    engine = Engine(LinearThompsonSampling(), InMemoryStore(), catalog, np.random.default_rng(0),
                    features=ContextCrossFeatures(keys=("a",)))
    batch, rejected = engine.feedback_batch([])
    assert len(batch) == 0 and batch.features.shape == (0, 6) and not rejected
    assert engine.observe([]).learned_rows == 0
