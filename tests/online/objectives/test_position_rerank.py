"""Position-aware re-ranking: the diversity weight grows with the slate position.

Step p (0 = top) uses weight w * (1 + p) ** power, and 0 before `from_position`; checked
against a per-draw brute-force reference, and the defaults against the plain MMR / DPP output.
"""

import numpy as np
import pytest
from pydantic import ValidationError

from online.objectives import ObjectiveSettings
from online.objectives.rerank import DPP_JITTER, rerank, standardise, step_weights
from online.slates import top_k


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    v = rng.standard_normal((n, d))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def position_weight(weight: float, position: int, power: float, start: int) -> float:
    return 0.0 if position < start else weight * (1 + position) ** power


def reference_mmr(utility: np.ndarray, vectors: np.ndarray, k: int, weight: float, power: float,
                  start: int) -> list[int]:
    """Brute force: at position p pick argmax u(i) - w_p * max_{j chosen} cos(i, j)."""
    chosen: list[int] = []
    for position in range(k):
        w = position_weight(weight, position, power, start)
        best, best_score = -1, -np.inf
        for i in range(len(utility)):
            if i in chosen:
                continue
            penalty = max((float(vectors[i] @ vectors[j]) for j in chosen), default=0.0)
            score = utility[i] - w * penalty
            if score > best_score:
                best, best_score = i, score
        chosen.append(best)
    return chosen


def reference_dpp(utility: np.ndarray, vectors: np.ndarray, k: int, weight: float, power: float,
                  start: int) -> list[int]:
    """Brute force: at position p pick argmax u(i) + w_p * (log det S_{Y+i} - log det S_Y)."""
    kernel = vectors @ vectors.T + DPP_JITTER * np.eye(len(vectors))
    chosen: list[int] = []
    for position in range(k):
        w = position_weight(weight, position, power, start)
        before = np.linalg.slogdet(kernel[np.ix_(chosen, chosen)])[1] if chosen else 0.0
        scores = np.full(len(utility), -np.inf)
        for i in range(len(utility)):
            if i not in chosen:
                subset = [*chosen, i]
                scores[i] = utility[i] + w * (np.linalg.slogdet(kernel[np.ix_(subset, subset)])[1] - before)
        chosen.append(int(np.argmax(scores)))
    return chosen


@pytest.mark.parametrize(("method", "reference"), [("mmr", reference_mmr), ("dpp", reference_dpp)])
@pytest.mark.parametrize(("power", "start"), [(1.0, 0), (0.5, 2), (2.0, 3), (0.0, 2)])
def test_vectorised_position_aware_greedy_equals_per_draw_reference(method: str, reference, power: float,
                                                                   start: int) -> None:
    rng = np.random.default_rng(10)
    n, m, k, weight = 40, 6, 6, 0.4
    vectors = unit(rng, n, 8)
    utility = rng.standard_normal((m, n))
    ranked = rerank(utility, vectors, k, weight, method, position_power=power, from_position=start)  # type: ignore[arg-type]
    for draw in range(m):
        assert ranked[draw].tolist() == reference(utility[draw], vectors, k, weight, power, start)


def test_position_aware_shortlist_restricts_each_draw_to_its_best_items() -> None:
    rng = np.random.default_rng(11)
    n, m, k, size = 60, 5, 5, 15
    vectors = unit(rng, n, 6)
    utility = rng.standard_normal((m, n))
    ranked = rerank(utility, vectors, k, 0.8, "mmr", shortlist=size, position_power=1.0, from_position=1)
    for draw in range(m):
        short = top_k(utility[draw : draw + 1], size)[0]
        expected = reference_mmr(utility[draw, short], vectors[short], k, 0.8, 1.0, 1)
        assert ranked[draw].tolist() == [int(short[i]) for i in expected]


@pytest.mark.parametrize("method", ["mmr", "dpp"])
def test_defaults_reproduce_the_flat_weight(method: str) -> None:
    rng = np.random.default_rng(12)
    vectors = unit(rng, 50, 8)
    utility = rng.standard_normal((20, 50))
    flat = rerank(utility, vectors, 8, 1.3, method, shortlist=25)  # type: ignore[arg-type]
    explicit = rerank(utility, vectors, 8, 1.3, method, shortlist=25, position_power=0.0,  # type: ignore[arg-type]
                      from_position=0)
    np.testing.assert_array_equal(flat, explicit)
    # and both equal the brute-force flat-weight greedy
    reference = reference_mmr if method == "mmr" else reference_dpp
    for draw in range(3):
        short = top_k(utility[draw : draw + 1], 25)[0]
        expected = reference(utility[draw, short], vectors[short], 8, 1.3, 0.0, 0)
        assert flat[draw].tolist() == [int(short[i]) for i in expected]


def test_a_growing_weight_keeps_the_top_relevant_and_diversifies_the_tail() -> None:
    """Clustered items, the most relevant cluster first: w / 4 growing with power 1 (equal to
    the flat w at position 3, larger below) keeps the plain top 2 more often than flat MMR w and
    covers more clusters."""
    rng = np.random.default_rng(13)
    centres = unit(rng, 5, 8)
    vectors = np.repeat(centres, 10, axis=0) + 0.1 * rng.standard_normal((50, 8))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    utility = standardise(np.repeat([2.0, 1.0, 0.5, 0.2, 0.0], 10)[None, :] + 0.3 * rng.standard_normal((64, 50)))
    plain = top_k(utility, 8)
    flat = rerank(utility, vectors, 8, 1.0, "mmr")
    growing = rerank(utility, vectors, 8, 0.25, "mmr", position_power=1.0)

    def same_top2(ranked: np.ndarray) -> float:
        return float(np.mean([set(a[:2]) == set(b[:2]) for a, b in zip(ranked, plain, strict=True)]))

    def clusters(ranked: np.ndarray) -> float:
        return float(np.mean([len(set((row // 10).tolist())) for row in ranked]))

    assert same_top2(growing) > same_top2(flat) + 0.2
    assert clusters(growing) > clusters(flat) > clusters(plain)


def test_from_position_beyond_the_slate_is_the_plain_top_k() -> None:
    rng = np.random.default_rng(14)
    utility = rng.standard_normal((8, 30))
    for method in ("mmr", "dpp"):
        ranked = rerank(utility, unit(rng, 30, 4), 5, 2.0, method, from_position=5)  # type: ignore[arg-type]
        np.testing.assert_array_equal(ranked, top_k(utility, 5))


def test_step_weights() -> None:
    np.testing.assert_allclose(step_weights(2.0, 4), [2.0, 2.0, 2.0, 2.0])
    np.testing.assert_allclose(step_weights(2.0, 4, position_power=1.0), [2.0, 4.0, 6.0, 8.0])
    np.testing.assert_allclose(step_weights(1.0, 4, position_power=2.0, from_position=2), [0.0, 0.0, 9.0, 16.0])


def test_bad_position_arguments_are_named() -> None:
    utility, vectors = np.zeros((2, 5)), np.ones((5, 3))
    with pytest.raises(ValueError, match="position_power"):
        rerank(utility, vectors, 2, 0.5, position_power=-1.0)
    with pytest.raises(ValueError, match="position_power"):
        rerank(utility, vectors, 2, 0.5, position_power=float("nan"))
    with pytest.raises(ValueError, match="from_position"):
        rerank(utility, vectors, 2, 0.5, from_position=-1)
    with pytest.raises(ValueError, match="weight"):
        rerank(utility, vectors, 2, float("inf"))


@pytest.mark.parametrize(
    ("field", "value"),
    [("diversity_position_power", -0.5), ("diversity_position_power", float("nan")),
     ("diversity_position_power", 9.0), ("diversity_from_position", -1), ("diversity_from_position", 1.5),
     ("diversity", float("inf"))],
)
def test_settings_reject_bad_position_fields_by_name(field: str, value: float) -> None:
    with pytest.raises(ValidationError, match=field):
        ObjectiveSettings(**{"diversity": 1.0, field: value})


def test_settings_defaults_are_flat() -> None:
    settings = ObjectiveSettings(diversity=2.0)
    assert settings.diversity_position_power == 0.0
    assert settings.diversity_from_position == 0
