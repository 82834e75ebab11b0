"""Business filters and settings validation."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from pydantic import ValidationError

from online.catalog import Catalog
from online.engine import Engine, EngineConfig, RankError
from online.events import Click, Impression, Item, RankRequest, ShownItem
from online.objectives import FilterSettings, Objectives, ObjectiveSettings
from online.policies.linear_ts import LinearThompsonSampling
from online.state import InMemoryStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def shown(engine: Engine, user: str, items: list[str], at_s: float, click: str | None = None) -> None:
    time = T0 + timedelta(seconds=at_s)
    events: list[Impression | Click] = [Impression(
        event_id=f"e{at_s}", request_id=f"q{at_s}", user_id=user, time=time,
        shown=tuple(ShownItem(item_id=i, position=p) for p, i in enumerate(items)))]
    if click is not None:
        events.append(Click(event_id=f"c{at_s}", request_id=f"q{at_s}", user_id=user, item_id=click, time=time))
    engine.observe(events)


def served(engine: Engine, at_s: float, k: int = 32, user: str = "u", scenario: str = "default") -> set[str]:
    request = RankRequest(request_id=f"r{at_s}", user_id=user, scenario=scenario, k=k,
                          time=T0 + timedelta(seconds=at_s))
    return {item.item_id for item in engine.rank(request).items}


def test_blocklist_and_required_attributes(make_engine: Callable[..., Engine]) -> None:
    filters = FilterSettings(blocklist={"i0", "i3", "ghost"}, required_attributes={"colour": "red"})
    items = served(make_engine(Objectives(filters=filters)), 0)
    assert items == {f"i{r}" for r in range(0, 32, 2)} - {"i0"}
    filters = FilterSettings(required_attributes={"colour": ["red", "blue"]})
    assert len(served(make_engine(Objectives(filters=filters)), 0)) == 32


def test_shown_and_clicked_within_a_window(make_engine: Callable[..., Engine]) -> None:
    filters = FilterSettings(exclude_shown_within_s=60, exclude_clicked_within_s=3600)
    engine = make_engine(Objectives(filters=filters))
    shown(engine, "u", ["i1", "i2"], at_s=0, click="i2")
    shown(engine, "u", ["i5"], at_s=100)
    shown(engine, "other", ["i7"], at_s=100)
    items = served(engine, at_s=130)  # i1 shown 130 s ago: allowed again; i2 clicked: still excluded
    assert "i1" in items and "i7" in items
    assert "i2" not in items and "i5" not in items
    assert "i2" in served(engine, at_s=4000)


def test_scenario_filters_override_the_defaults(make_engine: Callable[..., Engine]) -> None:
    red_only = (ObjectiveSettings(), FilterSettings(required_attributes={"colour": "red"}))
    engine = make_engine(Objectives(scenarios={"sale": red_only}))
    assert len(served(engine, 0, scenario="feed")) == 32
    assert len(served(engine, 1, scenario="sale")) == 16


def test_filters_removing_everything_give_a_clear_rank_error(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine(Objectives(filters=FilterSettings(required_attributes={"colour": "green"})))
    with pytest.raises(RankError, match=r"filters removed every one of the 32 active items.*required_attributes "
                                        r"removed 32"):
        engine.rank(RankRequest(request_id="r", user_id="u", time=T0))
    with pytest.raises(RankError, match=r"filters removed every candidate.*required_attributes removed 2"):
        engine.rank(RankRequest(request_id="r2", user_id="u", time=T0, candidates=("i0", "i1")))


def test_a_category_filter_never_empties_a_retrieved_slate(vectors: np.ndarray) -> None:
    """Retrieval searches only the items the filters allow: once the learner's favourites (the
    retrieved 8 of 32) all fail the filter, the slate is still full."""
    filters = FilterSettings(required_attributes={"cluster": "c3"})
    engine = Engine(LinearThompsonSampling(), InMemoryStore(), Catalog(dim=vectors.shape[1]),
                    np.random.default_rng(5), config=EngineConfig(retrieval_size=8),
                    objectives=Objectives(filters=filters))
    engine.add_items([Item(item_id=f"i{r}", fields={"t": str(r)}, attributes={"cluster": f"c{r // 8}"}, time=T0)
                      for r in range(len(vectors))], vectors)
    for step in range(30):  # the user clicks cluster 0 only
        shown(engine, "u", [f"i{step % 8}"], at_s=step, click=f"i{step % 8}")
    favourites = engine.candidate_rows(RankRequest(request_id="q", user_id="u", time=T0),
                                       engine.load_user("u"))
    assert set(favourites.tolist()) == set(range(8))  # unfiltered retrieval: cluster 0 alone
    items = served(engine, at_s=100, k=5)
    assert len(items) == 5 and all(int(item[1:]) // 8 == 3 for item in items)
    engine.add_items([Item(item_id="i24", fields={"t": "24"}, attributes={"cluster": "c0"}, time=T0)],
                     vectors[24:25])  # re-categorised: the cached mask follows the catalog
    assert "i24" not in served(engine, at_s=101, k=8) and len(served(engine, at_s=102, k=8)) == 7


def test_unknown_or_bad_settings_are_named() -> None:
    with pytest.raises(ValidationError, match="diversty"):
        ObjectiveSettings.model_validate({"diversty": 0.5})
    with pytest.raises(ValidationError, match="exclude_shown"):
        FilterSettings.model_validate({"exclude_shown": 10})
    with pytest.raises(ValidationError, match="diversity_method"):
        ObjectiveSettings.model_validate({"diversity_method": "random"})
    with pytest.raises(ValidationError, match=r"required_attributes\.colour"):
        FilterSettings(required_attributes={"colour": []})
    with pytest.raises(ValueError, match=r"scenarios\.sale"):
        Objectives(scenarios={"sale": (ObjectiveSettings(fairness_group="provider"), FilterSettings())})
    assert not ObjectiveSettings().reranks and not FilterSettings().active
    assert np.isfinite(ObjectiveSettings().exposure_window_s)
