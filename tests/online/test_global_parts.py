"""Global states that grow with the catalog (per-item arms) are written as changed parts."""

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime

import numpy as np

from online.catalog import Catalog
from online.engine import Engine
from online.events import Click, Impression, Item, ShownItem
from online.policies.arm_table import ArmStats
from online.policies.arms import BernoulliThompsonSampling, encode_arms
from online.state import InMemoryStore
from tests.online.stores import CountingStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class WholeStore:
    """A store that does not say its put_many is atomic (as the worker's tables)."""

    def __init__(self) -> None:
        self.inner = InMemoryStore()
        self.keys: list[str] = []

    def get(self, key: str) -> bytes | None:
        return self.inner.get(key)

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return self.inner.get_many(keys)

    def put(self, key: str, value: bytes) -> None:
        self.inner.put(key, value)

    def put_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        items = list(items)
        self.keys += [key for key, _ in items]
        self.inner.put_many(items)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def scan_prefix(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        return self.inner.scan_prefix(prefix)

    def close(self) -> None:
        self.inner.close()


def engine(store: object, n_items: int = 50) -> Engine:
    catalog = Catalog(dim=2)
    catalog.upsert([Item(item_id=f"i{n}", fields={"t": "x"}) for n in range(n_items)],
                   np.ones((n_items, 2), dtype=np.float32))
    return Engine(BernoulliThompsonSampling(), store, catalog, np.random.default_rng(0))  # type: ignore[arg-type]


def shown(step: int, items: list[int]) -> list[Impression | Click]:
    return [Impression(event_id=f"e{step}", request_id=f"r{step}", user_id="u", time=T0,
                       shown=tuple(ShownItem(item_id=f"i{n}", position=p) for p, n in enumerate(items))),
            Click(event_id=f"c{step}", request_id=f"r{step}", user_id="u", item_id=f"i{items[0]}", time=T0)]


def test_only_the_arms_a_batch_changed_are_written() -> None:
    store = CountingStore()
    first = engine(store)
    first.observe(shown(0, list(range(40))))
    first.observe(shown(1, [3, 45]))
    prefix = "bernoulli_ts/global#"
    assert sorted(store.batches[1]) == sorted([f"{prefix}i3", f"{prefix}i45", "bernoulli_ts/global"])
    restored = engine(store)  # reads the head and every part
    assert restored.global_state.ids == tuple(sorted(first.global_state.ids))
    np.testing.assert_array_equal(restored.global_state.lookup(["i3", "i45", "i7", "i49"]),
                                  first.global_state.lookup(["i3", "i45", "i7", "i49"]))
    restored.observe(shown(2, [7]))  # its first write: every arm (it does not know what the store holds)
    assert len(store.batches[2]) == 42
    restored.observe(shown(3, [7]))
    assert sorted(store.batches[3]) == sorted([f"{prefix}i7", "bernoulli_ts/global"])


def test_a_whole_blob_of_an_older_store_still_loads() -> None:
    store = InMemoryStore()
    stats = ArmStats(["a", "b"], np.array([4.0, 2.0]), np.array([1.0, 0.0]))
    store.put("bernoulli_ts/global", encode_arms("bernoulli_ts.arms", stats))
    store.put("bernoulli_ts/global#a", b"stale part, ignored under a whole head")
    loaded = engine(store).global_state
    assert loaded.ids == ("a", "b") and loaded.exposures.tolist() == [4.0, 2.0]


def test_a_store_that_is_not_atomic_gets_the_whole_state() -> None:
    store = WholeStore()
    target = engine(store)
    target.observe(shown(0, [1, 2]))
    target.observe(shown(1, [3]))
    assert store.keys == ["bernoulli_ts/global", "bernoulli_ts/global"]
    assert engine(store).global_state.lookup(["i1", "i3"])[0].tolist() == [1.0, 1.0]
