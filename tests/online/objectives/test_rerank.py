"""Vectorised MMR / DPP re-ranking: equal to a per-draw reference, more diverse than top-k."""

import numpy as np
import pytest

from online.evaluation.metrics import intra_list_diversity
from online.objectives.rerank import DPP_JITTER, rerank, standardise
from online.slates import top_k


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    v = rng.standard_normal((n, d))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def reference_mmr(utility: np.ndarray, vectors: np.ndarray, k: int, weight: float) -> list[int]:
    chosen: list[int] = []
    for _ in range(k):
        best, best_score = -1, -np.inf
        for i in range(len(utility)):
            if i in chosen:
                continue
            penalty = max((float(vectors[i] @ vectors[j]) for j in chosen), default=-np.inf)
            score = utility[i] - weight * penalty if chosen else utility[i]
            if score > best_score:
                best, best_score = i, score
        chosen.append(best)
    return chosen


def reference_dpp(utility: np.ndarray, vectors: np.ndarray, k: int, weight: float) -> list[int]:
    """Greedy argmax of sum(utility) + weight * log det(S_Y), S = cos + jitter I, by brute force."""
    kernel = vectors @ vectors.T + DPP_JITTER * np.eye(len(vectors))
    chosen: list[int] = []
    for _ in range(k):
        scores = np.full(len(utility), -np.inf)
        for i in range(len(utility)):
            if i not in chosen:
                subset = [*chosen, i]
                scores[i] = utility[subset].sum() + weight * np.linalg.slogdet(kernel[np.ix_(subset, subset)])[1]
        chosen.append(int(np.argmax(scores)))
    return chosen


@pytest.mark.parametrize(("method", "reference"), [("mmr", reference_mmr), ("dpp", reference_dpp)])
def test_vectorised_greedy_equals_per_draw_reference(method: str, reference) -> None:
    rng = np.random.default_rng(0)
    n, m, k, weight = 40, 6, 5, 0.7
    vectors = unit(rng, n, 8)
    utility = rng.standard_normal((m, n))
    ranked = rerank(utility, vectors, k, weight, method)  # type: ignore[arg-type]
    for draw in range(m):
        assert ranked[draw].tolist() == reference(utility[draw], vectors, k, weight)


def test_shortlist_restricts_each_draw_to_its_best_items() -> None:
    rng = np.random.default_rng(1)
    n, m, k, size = 60, 5, 4, 12
    vectors = unit(rng, n, 6)
    utility = rng.standard_normal((m, n))
    ranked = rerank(utility, vectors, k, 2.0, "mmr", shortlist=size)
    for draw in range(m):
        short = top_k(utility[draw : draw + 1], size)[0]
        expected = [int(short[i]) for i in reference_mmr(utility[draw, short], vectors[short], k, 2.0)]
        assert ranked[draw].tolist() == expected


def test_weight_zero_is_the_plain_top_k() -> None:
    rng = np.random.default_rng(2)
    utility = rng.standard_normal((16, 50))
    for method in ("mmr", "dpp"):
        np.testing.assert_array_equal(rerank(utility, unit(rng, 50, 4), 7, 0.0, method), top_k(utility, 7))


@pytest.mark.parametrize("method", ["mmr", "ild", "dpp"])
def test_reranking_raises_intra_list_diversity_on_clustered_items(method: str) -> None:
    rng = np.random.default_rng(3)
    centres = unit(rng, 4, 8)
    vectors = np.repeat(centres, 10, axis=0) + 0.1 * rng.standard_normal((40, 8))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    # cluster 0 is the most relevant: plain top-k fills the slate from it
    utility = standardise(np.repeat([2.0, 1.0, 0.5, 0.0], 10)[None, :] + 0.2 * rng.standard_normal((32, 40)))
    plain = top_k(utility, 6)
    diverse = rerank(utility, vectors, 6, 1.0, method)  # type: ignore[arg-type]
    assert intra_list_diversity(diverse, vectors) > intra_list_diversity(plain, vectors) + 0.3
    # every draw still leads with its most relevant item
    np.testing.assert_array_equal(diverse[:, 0], plain[:, 0])


def test_standardise_keeps_the_order_and_handles_constant_rows() -> None:
    scores = np.array([[3.0, 1.0, 2.0], [5.0, 5.0, 5.0]])
    z = standardise(scores)
    np.testing.assert_array_equal(np.argsort(z[0]), np.argsort(scores[0]))
    np.testing.assert_allclose(z[0].mean(), 0.0, atol=1e-12)
    np.testing.assert_allclose(z[0].std(), 1.0)
    np.testing.assert_array_equal(z[1], 0.0)


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="vectors"):
        rerank(np.zeros((2, 5)), np.zeros((4, 3)), 2, 0.5)
    with pytest.raises(ValueError, match="weight"):
        rerank(np.zeros((2, 5)), np.zeros((5, 3)), 2, -1.0)
    with pytest.raises(ValueError, match="method"):
        rerank(np.zeros((2, 5)), np.ones((5, 3)), 2, 0.5, "nope")  # type: ignore[arg-type]
