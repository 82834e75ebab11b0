"""Engine with objectives: defaults change nothing but reasons; reasons are right."""

from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np

from online.engine import Engine
from online.events import Click, Impression, RankRequest, ShownItem
from online.objectives import FilterSettings, Objectives, ObjectiveSettings
from online.objectives.explain import explain, nearest_clicked, popular_mask

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def feedback(engine: Engine, user: str, shown: list[str], clicked: list[str], n: int, scenario: str = "feed") -> None:
    events: list[Impression | Click] = [Impression(
        event_id=f"e{n}", request_id=f"q{n}", user_id=user, scenario=scenario, time=T0,
        shown=tuple(ShownItem(item_id=i, position=p) for p, i in enumerate(shown)))]
    events += [Click(event_id=f"c{n}{i}", request_id=f"q{n}", user_id=user, item_id=i, scenario=scenario, time=T0)
               for i in clicked]
    engine.observe(events)


def test_default_objectives_reproduce_plain_ranking_exactly(make_engine: Callable[..., Engine]) -> None:
    weight_zero = ObjectiveSettings(diversity=0.0, novelty=0.0, fairness=0.0, relevance=3.0, diversity_method="dpp")
    engines = [make_engine(None), make_engine(Objectives()), make_engine(Objectives(weight_zero, FilterSettings()))]
    for n in range(20):
        for engine in engines:
            feedback(engine, f"u{n % 3}", [f"i{n}", f"i{n + 5}"], [f"i{n}"], n)
        slates = [e.rank(RankRequest(request_id=f"r{n}", user_id=f"u{n % 3}", k=5, time=T0)) for e in engines]
        plain = [item.model_copy(update={"reason": None}) for item in slates[0].items]
        for slate in slates[1:]:
            assert [item.model_copy(update={"reason": None}) for item in slate.items] == plain
            assert all(item.reason for item in slate.items)
        assert all(item.reason is None for item in slates[0].items)


def test_reasons_follow_the_rules_on_a_fixture(vectors: np.ndarray) -> None:
    ids = [f"i{r}" for r in range(len(vectors))]
    slate = np.array([1, 9, 17, 25])  # cluster 0, 1, 2, 3
    clicked = np.array([0, 30])  # the user clicked i0 (cluster 0) and i30 (cluster 3)
    nearest = nearest_clicked(slate, clicked, vectors)
    assert nearest[0][0] == 0 and nearest[0][3] == 30 and nearest[1][0] > 0.9
    popular = popular_mask(np.array([0.0, 5.0, 3.0, 0.0, 9.0]), 2)
    assert popular.tolist() == [False, True, False, False, True]
    reasons = explain(
        slate, [False, True, False, False], np.array([0.0, 3.0, 0.0, 0.0]), [False, False, True, False],
        nearest, ids, "feed", new_item_exposures=10, similar_min_cosine=0.9,
    )
    # i9 explored and barely shown; i17 has no close click but is popular; i25 is close to i30
    assert reasons == ["similar to i0", "new: exploring", "popular in feed", "similar to i30"]
    assert nearest_clicked(slate, np.array([1]), vectors)[1][0] == -np.inf  # the item itself is no reason


def test_engine_reasons_use_clicks_and_scenario_popularity(
    make_engine: Callable[..., Engine], vectors: np.ndarray
) -> None:
    settings = ObjectiveSettings(similar_min_cosine=0.9, new_item_exposures=0)
    engine = make_engine(Objectives(settings))
    for n in range(30):  # u clicks i0 (cluster 0); everybody clicks i12 (cluster 1) in "feed"
        feedback(engine, "u", ["i0", "i20"], ["i0"], n)
        feedback(engine, f"v{n}", ["i12", "i20"], ["i12"], 100 + n)
    slate = engine.rank(RankRequest(request_id="r", user_id="u", scenario="feed", k=32, time=T0))
    assert not any(item.explored for item in slate.items)  # k = all candidates: the mean's slate has them all
    cosine = vectors @ vectors[0]
    expected = {
        f"i{r}": "similar to i0" if r != 0 and cosine[r] >= 0.9
        else "popular in feed" if r in (0, 12)
        else "high predicted relevance"
        for r in range(32)
    }
    assert {item.item_id: item.reason for item in slate.items} == expected
    assert sum(reason == "similar to i0" for reason in expected.values()) >= 5
    memory = engine.objectives.memory if engine.objectives else None
    assert memory is not None and memory.item_exposure.counts(engine.catalog.rows(["i20"]))[0] == 60
