"""Separate diversity embeddings: the catalog carries them, MMR/DPP and the simulator's ILD use them."""

from datetime import UTC, datetime

import numpy as np
import pytest

from encoders.hashing import HashingEncoder
from online.catalog import Catalog
from online.events import Item, RankRequest
from online.experiment import ExperimentConfig, run_policy
from online.objectives import Objectives, ObjectiveSettings
from online.objectives.rerank import rerank, utilities
from online.policies.base import ScoreDraws
from online.policies.linear_ts import LinearThompsonSampling
from online.simulation import Simulator, SimulatorConfig
from online.state import InMemoryStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def items(n: int, start: int = 0) -> list[Item]:
    return [Item(item_id=f"i{r}", fields={"t": str(r)}, time=T0) for r in range(start, start + n)]


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def test_diversity_vectors_round_trip_through_upsert_update_and_growth() -> None:
    rng = np.random.default_rng(0)
    catalog = Catalog(dim=4, diversity_dim=6)
    bandit, raw = rng.standard_normal((100, 4)).astype(np.float32), 3.0 * rng.standard_normal((100, 6))
    catalog.upsert(items(100), bandit, diversity_vectors=raw)  # grows past the initial 64 rows
    assert catalog.diversity_vectors.shape == (100, 6) and catalog.diversity_vectors.dtype == np.float32
    np.testing.assert_allclose(catalog.diversity_vectors, unit_rows(raw), atol=1e-6)
    np.testing.assert_array_equal(catalog.vectors, bandit)
    catalog.take_changes()

    updated = rng.standard_normal((2, 6))
    catalog.upsert([items(1, 7)[0], items(1, 100)[0]], bandit[:2], diversity_vectors=updated)  # update + add
    rows = catalog.rows(["i7", "i100"])
    np.testing.assert_array_equal(rows, [7, 100])
    np.testing.assert_allclose(catalog.diversity_vectors[rows], unit_rows(updated), atol=1e-6)
    np.testing.assert_allclose(catalog.diversity_vectors[:7], unit_rows(raw[:7]), atol=1e-6)  # others kept
    np.testing.assert_array_equal(catalog.take_changes(), [7, 100])


def test_without_diversity_dim_the_bandit_vectors_serve_for_diversity() -> None:
    catalog = Catalog(dim=3)
    vectors = np.eye(3, dtype=np.float32)
    catalog.upsert(items(3), vectors)
    assert catalog.diversity_dim is None
    np.testing.assert_array_equal(catalog.diversity_vectors, catalog.vectors)


def test_bad_diversity_vectors_are_named() -> None:
    plain, with_space = Catalog(dim=2), Catalog(dim=2, diversity_dim=3)
    bandit = np.ones((2, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="no diversity_dim"):
        plain.upsert(items(2), bandit, diversity_vectors=np.ones((2, 3)))
    with pytest.raises(ValueError, match="diversity_vectors: required"):
        with_space.upsert(items(2), bandit)
    with pytest.raises(ValueError, match=r"diversity_vectors: expected shape \(2, 3\)"):
        with_space.upsert(items(2), bandit, diversity_vectors=np.ones((2, 4)))
    with pytest.raises(ValueError, match="row 1 has zero or non-finite norm"):
        with_space.upsert(items(2), bandit, diversity_vectors=np.array([[1.0, 0, 0], [0, 0, 0]]))
    with pytest.raises(ValueError, match="diversity_dim"):
        Catalog(dim=2, diversity_dim=0)
    assert len(with_space) == 0  # a refused upsert adds nothing


def ranked_by_objectives(catalog: Catalog, scores: np.ndarray, k: int, weight: float, method: str = "mmr") -> list[int]:
    objectives = Objectives(ObjectiveSettings(diversity=weight, diversity_method=method))  # type: ignore[arg-type]
    rows = np.arange(len(catalog), dtype=np.int64)
    draws = ScoreDraws(scores[None, :], scores, np.zeros_like(scores))
    ranking = objectives.rank(RankRequest(request_id="r", user_id="u", k=k, time=T0), rows, draws, catalog)
    return [int(i) for i in ranking.ranked[0]]


@pytest.mark.parametrize("method", ["mmr", "dpp"])
def test_reranking_follows_the_diversity_space_where_it_disagrees_with_the_bandit_space(method: str) -> None:
    # Bandit vectors: four orthogonal items (nothing to diversify). Diversity embeddings: items 0
    # and 1 are near-duplicates, 2 and 3 unrelated to them.
    bandit = np.eye(4, dtype=np.float32)
    raw = np.array([[1.0, 0.0, 0.0], [0.99, 0.14, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    scores = np.array([1.0, 0.9, 0.8, 0.1])
    plain, spaced = Catalog(dim=4), Catalog(dim=4, diversity_dim=3)
    plain.upsert(items(4), bandit)
    spaced.upsert(items(4), bandit, diversity_vectors=raw)
    assert ranked_by_objectives(plain, scores, 2, weight=2.0, method=method) == [0, 1]
    assert ranked_by_objectives(spaced, scores, 2, weight=2.0, method=method) == [0, 2]
    # No diversity weight: both spaces give the plain top k.
    assert ranked_by_objectives(spaced, scores, 2, weight=0.0, method=method) == [0, 1]


def test_default_catalog_reranks_exactly_as_over_the_bandit_vectors() -> None:
    rng = np.random.default_rng(5)
    bandit = unit_rows(rng.standard_normal((30, 8))).astype(np.float32)
    scores = rng.standard_normal(30)
    catalog = Catalog(dim=8)
    catalog.upsert(items(30), bandit)
    expected = rerank(utilities(np.vstack([scores, scores]), 1.0, None), bandit, 10, 3.0, shortlist=50)[0]
    assert ranked_by_objectives(catalog, scores, 10, weight=3.0) == expected.tolist()


ENCODER = HashingEncoder(dim=16)
RAW = HashingEncoder(dim=48)
SIMULATOR = SimulatorConfig(seed=2, n_items=300, initial_item_fraction=0.8, n_users=100, n_candidates=40, horizon=300)


def embed(found):  # type: ignore[no-untyped-def]
    return ENCODER.encode([item.text() for item in found])


def raw_embed(found):  # type: ignore[no-untyped-def]
    return RAW.encode([item.text() for item in found])


def simulate(objectives: ObjectiveSettings | None, diversity_embed=None):  # type: ignore[no-untyped-def]
    return run_policy(LinearThompsonSampling(), Simulator(SIMULATOR), embed, InMemoryStore(), ENCODER.dim,
                      ExperimentConfig(n_requests=300, n_draws=8), np.random.default_rng(0), objectives=objectives,
                      diversity_embed=diversity_embed)


def test_run_policy_measures_and_reranks_in_the_diversity_space() -> None:
    settings = ObjectiveSettings(diversity=5.0)
    plain, same_space, other_space = simulate(settings), simulate(settings, embed), simulate(settings, raw_embed)
    # The bandit vectors passed again as diversity embeddings: the very same run.
    np.testing.assert_array_equal(same_space.clicks, plain.clicks)
    np.testing.assert_allclose(same_space.diversity, plain.diversity, atol=1e-6)
    np.testing.assert_allclose(same_space.bandit_diversity, plain.diversity, atol=1e-6)
    assert len(plain.bandit_diversity) == 0 and plain.summary()["bandit_diversity"] == plain.summary()["diversity"]
    # Another space: ILD measured there, the bandit-space ILD kept next to it, and other slates served.
    assert len(other_space.bandit_diversity) == len(other_space.diversity) == 300
    assert not np.allclose(other_space.diversity, other_space.bandit_diversity)
    assert not np.allclose(other_space.bandit_diversity, plain.diversity)
    # New items arriving mid-run get diversity embeddings too (the run would raise otherwise).
    assert Simulator(SIMULATOR).config.n_initial_items < SIMULATOR.n_items
