"""`score_units`: diversity weights in standard deviations of each draw (default) or in the scores'
own units, where one weight buys diversity at one price in expected reward in every request."""

import numpy as np
import pytest
from pydantic import ValidationError

from online.catalog import Catalog
from online.events import Item, RankRequest
from online.objectives import Objectives, ObjectiveSettings
from online.objectives.rerank import rerank, standardise, utilities
from online.policies.base import ScoreDraws
from tests.online.objectives.conftest import T0

# Items 0 and 1 are near-duplicates, item 2 points elsewhere.
VECTORS = np.array([[1.0, 0.0], [0.995, 0.0999], [0.0, 1.0]], dtype=np.float32)
FLAT = np.array([[0.50, 0.49, 0.48]])  # relevance nearly tied: variety is cheap
STEEP = np.array([[0.60, 0.50, 0.40]])  # the same order, ten times the spread: variety is dear


def test_score_units_keep_the_scores_spread_and_standardised_units_remove_it() -> None:
    adjustment = np.array([0.0, 0.1, -0.1])
    for scores in (FLAT, STEEP):
        np.testing.assert_allclose(utilities(scores, 2.0, adjustment, standardised=False),
                                   2.0 * (scores - scores.mean()) + adjustment)
        np.testing.assert_allclose(utilities(scores, 2.0, adjustment), 2.0 * standardise(scores) + adjustment)
    # standardised, the two requests are the same utility row: they cannot be told apart
    np.testing.assert_allclose(utilities(FLAT, 1.0, None), utilities(STEEP, 1.0, None))


@pytest.mark.parametrize("method", ["mmr", "ild"])
def test_in_score_units_the_tied_request_diversifies_and_the_steep_one_does_not(method: str) -> None:
    # second pick: item 1 costs ~0.99 similarity, item 2 costs nothing; weight 0.05 in score units
    # outweighs the tied request's 0.01 gap to item 2 but not the steep request's 0.1
    flat = rerank(utilities(FLAT, 1.0, None, standardised=False), VECTORS, 2, 0.05, method)
    steep = rerank(utilities(STEEP, 1.0, None, standardised=False), VECTORS, 2, 0.05, method)
    assert flat[0].tolist() == [0, 2]
    assert steep[0].tolist() == [0, 1]
    # standardised, the two requests have the same utility row (test above): one weight treats both alike


def test_objectives_rank_uses_the_configured_units() -> None:
    catalog = Catalog(dim=2)
    catalog.upsert([Item(item_id=f"i{r}", fields={"t": str(r)}, time=T0) for r in range(3)], VECTORS)
    rows = np.arange(3, dtype=np.int64)
    request = RankRequest(request_id="r", user_id="u", k=2, time=T0)

    def served(scores: np.ndarray, units: str) -> list[int]:
        objectives = Objectives(ObjectiveSettings(diversity=0.05, score_units=units, shortlist_factor=0))
        draws = ScoreDraws(draws=scores, mean=scores[0], std=np.zeros(3))
        return objectives.rank(request, rows, draws, catalog).ranked[0].tolist()

    assert served(FLAT, "score") == [0, 2] and served(STEEP, "score") == [0, 1]
    assert served(FLAT, "standardised") == served(STEEP, "standardised") == [0, 1]


def test_bad_units_are_named() -> None:
    with pytest.raises(ValidationError, match="score_units"):
        ObjectiveSettings(score_units="percent")  # type: ignore[arg-type]
