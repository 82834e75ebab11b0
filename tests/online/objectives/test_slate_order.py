"""`slate_order="utility"`: the diversity re-ranking chooses the items, relevance orders them."""

import numpy as np
import pytest
from pydantic import ValidationError

from online.catalog import Catalog
from online.evaluation.sweep import label_of
from online.events import Item, RankRequest
from online.objectives import Objectives, ObjectiveSettings
from online.objectives.rerank import METHODS, rerank
from online.policies.base import ScoreDraws
from tests.online.objectives.conftest import T0

# Items 0 and 1 are near-duplicates, item 2 points elsewhere, item 3 between them and poor.
VECTORS = np.array([[1.0, 0.0], [0.995, 0.0999], [0.0, 1.0], [0.7071, 0.7071]], dtype=np.float32)
UTILITY = np.array([[1.0, 0.9, 0.8, 0.1]])


@pytest.mark.parametrize("method", ["mmr", "ild"])
def test_the_diverse_pick_moves_below_the_better_item_it_was_picked_before(method: str) -> None:
    # step 1 prefers item 2 (item 1 nearly repeats item 0); step 2 then takes item 1
    greedy = rerank(UTILITY, VECTORS, 3, 0.5, method)
    by_utility = rerank(UTILITY, VECTORS, 3, 0.5, method, order="utility")
    assert greedy[0].tolist() == [0, 2, 1]
    assert by_utility[0].tolist() == [0, 1, 2]


@pytest.mark.parametrize("method", METHODS)
def test_same_items_by_decreasing_utility_and_no_less_examination_weighted_utility(method: str) -> None:
    rng = np.random.default_rng(11)
    utility = rng.normal(size=(16, 40))
    vectors = rng.normal(size=(40, 8))
    examination = 1.0 / (1.0 + np.arange(10))
    reordered = 0
    for weight, power, start in ((0.5, 0.0, 0), (2.0, 1.0, 2), (5.0, 0.0, 0)):
        greedy = rerank(utility, vectors, 10, weight, method, 0, power, start)
        by_utility = rerank(utility, vectors, 10, weight, method, 0, power, start, order="utility")
        np.testing.assert_array_equal(np.sort(greedy, axis=1), np.sort(by_utility, axis=1))
        ordered = np.take_along_axis(utility, by_utility, axis=1)
        assert (np.diff(ordered, axis=1) <= 0).all()
        unordered = np.take_along_axis(utility, greedy, axis=1)
        assert (ordered @ examination >= unordered @ examination - 1e-12).all()
        reordered += int((greedy != by_utility).any(axis=1).sum())
    assert reordered > 0  # the case is not vacuous: some greedy slates were out of utility order


def test_without_diversity_the_order_is_the_plain_top_k() -> None:
    utility = np.random.default_rng(3).normal(size=(4, 12))
    np.testing.assert_array_equal(rerank(utility, np.eye(12), 5, 0.0, "ild", order="utility"),
                                  rerank(utility, np.eye(12), 5, 0.0, "ild"))


def test_objectives_rank_serves_the_configured_order() -> None:
    catalog = Catalog(dim=2)
    catalog.upsert([Item(item_id=f"i{r}", fields={"t": str(r)}, time=T0) for r in range(4)], VECTORS)
    rows = np.arange(4, dtype=np.int64)
    request = RankRequest(request_id="r", user_id="u", k=3, time=T0)
    draws = ScoreDraws(draws=UTILITY, mean=UTILITY[0], std=np.zeros(4))

    def served(order: str) -> list[int]:
        settings = ObjectiveSettings(diversity=0.5, diversity_method="ild", score_units="score", shortlist_factor=0,
                                     slate_order=order)  # type: ignore[arg-type]
        ranking = Objectives(settings).rank(request, rows, draws, catalog)
        return ranking.ranked[0].tolist() + ranking.greedy.tolist()

    assert served("greedy") == [0, 2, 1, 0, 2, 1]
    assert served("utility") == [0, 1, 2, 0, 1, 2]


def test_label_and_validation() -> None:
    sorted_ild = ObjectiveSettings(diversity=0.2, diversity_method="ild", slate_order="utility")
    assert label_of(sorted_ild) == "ild0.2+sorted"
    assert label_of(ObjectiveSettings(fairness=1.0, slate_order="utility")) == "fair1"
    with pytest.raises(ValidationError, match="slate_order"):
        ObjectiveSettings(slate_order="random")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="order"):
        rerank(UTILITY, VECTORS, 2, 0.5, "ild", order="random")  # type: ignore[arg-type]
