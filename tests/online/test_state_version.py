"""State learned over one embedding is never ranked or updated with another (online.state_version)."""

from datetime import UTC, datetime

import numpy as np
import pytest

from online.catalog import Catalog
from online.engine import Engine
from online.events import Impression, Item, RankRequest, ShownItem
from online.policies.linear_ts import LinearThompsonSampling
from online.state import InMemoryStore
from online.state_version import EmbeddingMismatchError

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def engine(store: InMemoryStore, version: str) -> Engine:
    catalog = Catalog(dim=4)
    items = [Item(item_id=f"i{n}", fields={"title": f"t{n}"}, time=T0) for n in range(5)]
    catalog.upsert(items, np.eye(5, 4, dtype=np.float32))
    return Engine(LinearThompsonSampling(), store, catalog, np.random.default_rng(0), embedding_version=lambda: version)


def impression() -> Impression:
    return Impression(event_id="e", request_id="r", user_id="u", time=T0,
                      shown=(ShownItem(item_id="i0", position=0), ShownItem(item_id="i1", position=1)))


def test_the_embedding_version_is_stored_and_named_by_the_slates() -> None:
    store = InMemoryStore()
    first = engine(store, "enc/d4/pca-abc")
    first.observe([impression()])
    assert store.get("linear_ts/embedding") == b"enc/d4/pca-abc"
    slate = first.rank(RankRequest(request_id="r2", user_id="u", k=2, time=T0))
    assert slate.policy_version == f"{first.policy.version}+enc/d4/pca-abc"


def test_another_embedding_is_refused_for_learning_and_ranking() -> None:
    store = InMemoryStore()
    engine(store, "enc/d4/pca-abc").observe([impression()])
    other = engine(store, "enc/d4/pca-xyz")
    with pytest.raises(EmbeddingMismatchError, match="pca-abc"):
        other.observe([impression()])
    with pytest.raises(EmbeddingMismatchError):
        other.rank(RankRequest(request_id="r3", user_id="u", k=2, time=T0))
    engine(store, "enc/d4/pca-abc").observe([impression()])  # the same embedding goes on learning


def test_an_unknown_version_checks_nothing_until_it_is_known() -> None:
    store = InMemoryStore()
    version = [""]
    late = Engine(LinearThompsonSampling(), store, engine(store, "").catalog, np.random.default_rng(0),
                  embedding_version=lambda: version[0])
    late.observe([impression()])
    assert store.get("linear_ts/embedding") is None
    version[0] = "enc/d4/pca-abc"
    late.observe([impression()])
    assert store.get("linear_ts/embedding") == b"enc/d4/pca-abc"
