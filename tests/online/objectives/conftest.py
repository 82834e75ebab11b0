"""Fixtures: clustered item vectors and an engine over them (linear TS, in-memory state)."""

from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pytest

from online.catalog import Catalog
from online.engine import Engine, EngineConfig
from online.events import Item
from online.objectives import Objectives
from online.policies.linear_ts import LinearThompsonSampling
from online.state import InMemoryStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def clustered_vectors(n_clusters: int, per_cluster: int, dim: int, spread: float, seed: int) -> np.ndarray:
    """float32[n_clusters * per_cluster, dim] unit vectors in tight clusters (row r in cluster r // per_cluster)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim))
    vectors = np.repeat(centres, per_cluster, axis=0) + spread * rng.standard_normal((n_clusters * per_cluster, dim))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32)


@pytest.fixture
def vectors() -> np.ndarray:
    """4 clusters of 8 items at d = 8."""
    return clustered_vectors(4, 8, 8, 0.15, seed=3)


@pytest.fixture
def make_engine(vectors: np.ndarray) -> Callable[..., Engine]:
    """make_engine(objectives=None, seed=1, n_draws=64, support_epsilon=None: the default) over
    items i0..i31, provider p<cluster>, attribute colour red (even rows) / blue (odd rows)."""

    def make(objectives: Objectives | None = None, seed: int = 1, n_draws: int = 64,
             support_epsilon: float | None = None) -> Engine:
        config = EngineConfig(n_draws=n_draws) if support_epsilon is None else EngineConfig(
            n_draws=n_draws, support_epsilon=support_epsilon)
        engine = Engine(LinearThompsonSampling(), InMemoryStore(), Catalog(dim=vectors.shape[1]),
                        np.random.default_rng(seed), config=config, objectives=objectives)
        items = [
            Item(item_id=f"i{r}", fields={"t": str(r)}, provider=f"p{r // 8}",
                 attributes={"colour": "red" if r % 2 == 0 else "blue"}, time=T0)
            for r in range(len(vectors))
        ]
        engine.add_items(items, vectors)
        return engine

    return make
