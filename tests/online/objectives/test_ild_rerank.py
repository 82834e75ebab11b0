"""Greedy ILD re-ranking (`diversity_method="ild"`): the penalty is the mean cosine to the picked items.

Checked against a per-draw brute force (flat and position-aware weights, with a shortlist), against
MMR where the two must agree (one picked item: mean = max), and by the settings' validation.
"""

import numpy as np
import pytest
from pydantic import ValidationError

from online.objectives import ObjectiveSettings
from online.objectives.rerank import rerank
from online.slates import top_k


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    v = rng.standard_normal((n, d))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def reference_ild(utility: np.ndarray, vectors: np.ndarray, k: int, weight: float, power: float = 0.0,
                  start: int = 0) -> list[int]:
    """Brute force: at position p pick argmax u(i) - w_p * (ILD loss of adding i), the loss being
    the mean pairwise similarity of chosen + [i] times its pair count, minus the chosen set's,
    divided by p (= the mean cosine of i to the chosen items)."""
    chosen: list[int] = []
    for position in range(k):
        w = 0.0 if position < start else weight * (1 + position) ** power

        def pair_sum(items: list[int]) -> float:
            return sum(float(vectors[a] @ vectors[b]) for x, a in enumerate(items) for b in items[x + 1 :])

        best, best_score = -1, -np.inf
        for i in range(len(utility)):
            if i in chosen:
                continue
            loss = (pair_sum([*chosen, i]) - pair_sum(chosen)) / position if chosen else 0.0
            score = utility[i] - w * loss
            if score > best_score:
                best, best_score = i, score
        chosen.append(best)
    return chosen


@pytest.mark.parametrize(("power", "start"), [(0.0, 0), (1.0, 0), (0.5, 2), (2.0, 3)])
def test_vectorised_ild_equals_per_draw_reference(power: float, start: int) -> None:
    rng = np.random.default_rng(20)
    n, m, k, weight = 40, 6, 7, 0.6
    vectors = unit(rng, n, 8)
    utility = rng.standard_normal((m, n))
    ranked = rerank(utility, vectors, k, weight, "ild", position_power=power, from_position=start)
    assert ranked.shape == (m, k) and ranked.dtype == np.int64
    for draw in range(m):
        assert ranked[draw].tolist() == reference_ild(utility[draw], vectors, k, weight, power, start)


def test_ild_shortlist_restricts_each_draw_to_its_best_items() -> None:
    rng = np.random.default_rng(21)
    n, m, k, size = 60, 5, 5, 15
    vectors = unit(rng, n, 6)
    utility = rng.standard_normal((m, n))
    ranked = rerank(utility, vectors, k, 1.5, "ild", shortlist=size, position_power=1.0)
    for draw in range(m):
        short = top_k(utility[draw : draw + 1], size)[0]
        expected = reference_ild(utility[draw, short], vectors[short], k, 1.5, 1.0)
        assert ranked[draw].tolist() == [int(short[i]) for i in expected]


def test_ild_and_mmr_agree_while_one_item_is_picked_and_differ_after() -> None:
    """With one picked item the mean similarity is the max: the first two positions agree; later
    the penalties differ, so on random data some slate differs."""
    rng = np.random.default_rng(22)
    vectors = unit(rng, 50, 8)
    utility = rng.standard_normal((64, 50))
    ild = rerank(utility, vectors, 8, 1.0, "ild")
    mmr = rerank(utility, vectors, 8, 1.0, "mmr")
    np.testing.assert_array_equal(ild[:, :2], mmr[:, :2])
    assert (ild != mmr).any()


def test_ild_weight_zero_or_late_start_is_the_plain_top_k() -> None:
    rng = np.random.default_rng(24)
    utility = rng.standard_normal((8, 30))
    vectors = unit(rng, 30, 4)
    np.testing.assert_array_equal(rerank(utility, vectors, 5, 0.0, "ild"), top_k(utility, 5))
    np.testing.assert_array_equal(rerank(utility, vectors, 5, 3.0, "ild", from_position=5), top_k(utility, 5))


def test_zero_vectors_are_similar_to_nothing() -> None:
    """A zero vector has cosine 0 to every item: with a large weight it beats a relevant near-copy."""
    vectors = np.array([[1.0, 0.0], [1.0, 0.01], [0.0, 0.0]])
    utility = np.array([[3.0, 2.0, 1.0]])
    assert rerank(utility, vectors, 2, 5.0, "ild").tolist() == [[0, 2]]
    assert rerank(utility, vectors, 2, 0.5, "ild").tolist() == [[0, 1]]


def test_bad_method_is_named_with_the_choices() -> None:
    with pytest.raises(ValueError, match=r"method.*'ild'"):
        rerank(np.zeros((2, 5)), np.ones((5, 3)), 2, 0.5, "mean")  # type: ignore[arg-type]


def test_settings_accept_ild_and_name_a_bad_method() -> None:
    assert ObjectiveSettings(diversity=2.0, diversity_method="ild").diversity_method == "ild"
    assert ObjectiveSettings().diversity_method == "mmr"
    with pytest.raises(ValidationError, match="diversity_method"):
        ObjectiveSettings(diversity=2.0, diversity_method="mean")  # type: ignore[arg-type]
