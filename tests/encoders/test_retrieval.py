"""ScorerRetriever: the engine's retrieval on a scoring backend, following catalog changes."""

from datetime import UTC, datetime

import numpy as np

from encoders.retrieval import ScorerRetriever
from encoders.scoring import NumpyScorer
from online.catalog import Catalog
from online.engine import Engine, EngineConfig
from online.events import Item, RankRequest
from online.policies.linear_ts import LinearThompsonSampling
from online.state import InMemoryStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    vectors = rng.standard_normal((n, d)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_retrieves_the_exact_top_n_and_sees_new_items() -> None:
    rng = np.random.default_rng(0)
    catalog = Catalog(dim=8)
    catalog.upsert([Item(item_id=f"i{n}", fields={"t": "x"}, time=T0) for n in range(100)], unit(rng, 100, 8))
    retriever = ScorerRetriever(NumpyScorer(), catalog)
    query = unit(rng, 1, 8)[0]
    active = np.arange(100, dtype=np.int64)
    got = retriever(query, 5, active)
    np.testing.assert_array_equal(np.sort(got), np.sort(np.argsort(-(catalog.vectors @ query))[:5]))
    catalog.upsert([Item(item_id="new", fields={"t": "y"}, time=T0)], query[None, :])  # a perfect match arrives
    assert catalog.row_of("new") in retriever(query, 5, np.arange(101, dtype=np.int64)).tolist()


def test_engine_ranks_retrieved_candidates_with_a_scorer() -> None:
    rng = np.random.default_rng(1)
    catalog = Catalog(dim=8)
    engine = Engine(LinearThompsonSampling(), InMemoryStore(), catalog, rng,
                    config=EngineConfig(retrieval_size=20, n_draws=8),
                    retriever=ScorerRetriever(NumpyScorer(), catalog))
    engine.add_items([Item(item_id=f"i{n}", fields={"t": "x"}, time=T0) for n in range(300)], unit(rng, 300, 8))
    slate = engine.rank(RankRequest(request_id="r", user_id="u", k=5, time=T0))
    assert len(slate.items) == 5
