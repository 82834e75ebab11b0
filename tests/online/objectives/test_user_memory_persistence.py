"""A user's recent items are stored with the user's state: the shown / clicked filters and the
"similar to" reasons outlive a restart, a rebalance and the in-memory user cap."""

from datetime import timedelta

import numpy as np
import pytest

from online.catalog import Catalog
from online.codec import StateCodecError
from online.engine import Engine, EngineConfig
from online.events import Click, Impression, Item, RankRequest, ShownItem
from online.objectives import FilterSettings, Objectives, ObjectiveSettings
from online.objectives.memory import ObjectiveMemory
from online.objectives.user_codec import decode_user_memory, encode_user_memory
from online.policies.linear_ts import LinearThompsonSampling
from online.state import InMemoryStore
from tests.online.objectives.conftest import T0, clustered_vectors

VECTORS = clustered_vectors(4, 8, 8, 0.15, seed=3)
FILTERS = FilterSettings(exclude_shown_within_s=3600.0, exclude_clicked_within_s=3600.0)


def catalog_of(order: list[int]) -> Catalog:
    """Items i<r> for r in `order`, added in that order (so catalog rows differ between orders)."""
    catalog = Catalog(dim=VECTORS.shape[1])
    catalog.upsert([Item(item_id=f"i{r}", fields={"t": str(r)}, time=T0) for r in order], VECTORS[order])
    return catalog


def engine_over(store: InMemoryStore, order: list[int], settings: ObjectiveSettings | None = None) -> Engine:
    engine = Engine(LinearThompsonSampling(), store, catalog_of(order), np.random.default_rng(1),
                    config=EngineConfig(n_draws=16), objectives=Objectives(settings or ObjectiveSettings(), FILTERS))
    return engine


def show(engine: Engine, user: str, shown: list[str], clicked: list[str], n: int, minutes: float = 0.0) -> None:
    time = T0 + timedelta(minutes=minutes)
    events: list[Impression | Click] = [Impression(
        event_id=f"e{n}", request_id=f"q{n}", user_id=user, scenario="feed", time=time,
        shown=tuple(ShownItem(item_id=i, position=p) for p, i in enumerate(shown)))]
    events += [Click(event_id=f"c{n}{i}", request_id=f"q{n}", user_id=user, item_id=i, scenario="feed", time=time)
               for i in clicked]
    engine.observe(events)


def served(engine: Engine, user: str, minutes: float = 1.0) -> set[str]:
    request = RankRequest(request_id=f"r-{user}", user_id=user, k=32, time=T0 + timedelta(minutes=minutes))
    return {item.item_id for item in engine.rank(request).items}


ALL = {f"i{r}" for r in range(32)}


def test_a_restarted_engine_with_another_catalog_order_still_filters_what_the_user_saw() -> None:
    store = InMemoryStore()
    first = engine_over(store, list(range(32)))
    show(first, "u", ["i1", "i2", "i3"], ["i2"], 0)
    show(first, "u", ["i4"], [], 1)
    assert served(first, "u") == ALL - {"i1", "i2", "i3", "i4"}
    restarted = engine_over(store, list(range(31, -1, -1)))  # rows reversed: ids, not rows, are stored
    assert served(restarted, "u") == ALL - {"i1", "i2", "i3", "i4"}
    assert served(restarted, "v") == ALL  # another user is not filtered
    # feedback after the restart adds to what was stored, not replaces it
    show(restarted, "u", ["i5"], [], 2)
    assert served(engine_over(store, list(range(32))), "u") == ALL - {"i1", "i2", "i3", "i4", "i5"}


def test_users_dropped_by_the_memory_cap_are_read_back() -> None:
    engine = engine_over(InMemoryStore(), list(range(32)), ObjectiveSettings(max_users=1))
    show(engine, "u", ["i1"], [], 0)
    show(engine, "v", ["i2"], [], 1)  # u leaves the memory
    assert engine.objectives is not None and engine.objectives.memory.user("u") is None
    assert served(engine, "u") == ALL - {"i1"}
    assert served(engine, "v") == ALL - {"i2"}


def test_forget_deletes_the_stored_recent_items() -> None:
    store = InMemoryStore()
    engine = engine_over(store, list(range(32)))
    show(engine, "u", ["i1"], ["i1"], 0)
    assert store.get(engine.stored_objectives.user_key("u")) is not None
    engine.forget("u")
    assert store.get(engine.stored_objectives.user_key("u")) is None
    assert served(engine_over(store, list(range(32))), "u") == ALL


def test_the_blob_keeps_ids_and_times_oldest_first_and_drops_unknown_items() -> None:
    settings = ObjectiveSettings(recent_shown_per_user=3, recent_clicked_per_user=3)
    memory = ObjectiveMemory(settings)
    catalog = catalog_of(list(range(8)))
    rows = catalog.rows(["i0", "i1", "i2", "i3", "i4", "i5"])
    memory.observe(["u"] * 6, ["feed"] * 6, rows, np.array([1.0, 1, 1, 1, 0, 0]), np.arange(6.0))
    blob = encode_user_memory(memory.users["u"], catalog)
    other = catalog_of([5, 3, 2, 4])  # i1 is gone from this catalog
    user = decode_user_memory(blob, other, ObjectiveMemory(settings))
    shown_rows, shown_times = user.shown.entries()
    assert other.ids_of(shown_rows) == ["i2", "i3"] and shown_times.tolist() == [2.0, 3.0]  # ring of 3: i1..i3
    clicked_rows, clicked_times = user.clicked.entries()  # ring of 3, two held
    assert other.ids_of(clicked_rows) == ["i4", "i5"] and clicked_times.tolist() == [4.0, 5.0]
    with pytest.raises(StateCodecError):
        decode_user_memory(b"not a blob", other, ObjectiveMemory(settings))


def feedback(user: str, item: str, n: int) -> Impression:
    return Impression(event_id=f"e{n}", request_id=f"q{n}", user_id=user, scenario="feed", time=T0,
                      shown=(ShownItem(item_id=item, position=0),))


def test_the_memory_cap_never_drops_a_user_of_the_batch_being_observed() -> None:
    """u is the least recently active when a batch of a new user w and u arrives: adding w must
    not drop u mid-batch (u would be observed into an empty memory and its stored i1 lost)."""
    store = InMemoryStore()
    engine = engine_over(store, list(range(32)), ObjectiveSettings(max_users=2))
    engine.observe([feedback("u", "i1", 0)])
    engine.observe([feedback("v", "i2", 1)])
    engine.observe([feedback("w", "i3", 2), feedback("u", "i4", 3)])
    assert engine.objectives is not None and set(engine.objectives.memory.users) == {"w", "u"}
    assert served(engine_over(store, list(range(32))), "u") == ALL - {"i1", "i4"}
    assert served(engine, "v") == ALL - {"i2"}  # v, dropped, is read back


def test_reading_a_user_back_for_a_batch_drops_no_other_user_of_the_batch() -> None:
    store = InMemoryStore()
    engine = engine_over(store, list(range(32)), ObjectiveSettings(max_users=1))
    engine.observe([feedback("x", "i1", 0)])
    engine.observe([feedback("u", "i2", 1)])  # x leaves the memory, stays stored
    engine.observe([feedback("u", "i3", 2), feedback("x", "i4", 3)])  # x read back while u is held
    fresh = engine_over(store, list(range(32)))
    assert served(fresh, "u") == ALL - {"i2", "i3"}
    assert served(fresh, "x") == ALL - {"i1", "i4"}


class CountingStore(InMemoryStore):
    """Counts the keys read."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    def get_many(self, keys):  # type: ignore[no-untyped-def]
        self.reads.extend(keys)
        return super().get_many(keys)


def test_a_user_with_nothing_stored_is_looked_up_once() -> None:
    store = CountingStore()
    engine = engine_over(store, list(range(32)))
    for minute in range(3):
        assert served(engine, "new", minutes=minute) == ALL
    assert store.reads.count(engine.stored_objectives.user_key("new")) == 1
    show(engine, "new", ["i7"], [], 0, minutes=3)  # remembered (empty), then observed and stored
    assert served(engine_over(store, list(range(32))), "new", minutes=4) == ALL - {"i7"}


def test_requests_alone_keep_the_memory_under_the_cap_and_refresh_who_is_recent() -> None:
    engine = engine_over(InMemoryStore(), list(range(32)), ObjectiveSettings(max_users=3))
    assert engine.objectives is not None
    memory = engine.objectives.memory
    for n in range(10):
        served(engine, f"anonymous{n}")
    assert list(memory.users) == ["anonymous7", "anonymous8", "anonymous9"]
    show(engine, "u", ["i1"], [], 0)
    show(engine, "v", ["i2"], [], 1)
    served(engine, "u")  # a request makes u more recent than v
    show(engine, "w", ["i3"], [], 2)
    show(engine, "x", ["i4"], [], 3)
    assert list(memory.users) == ["u", "w", "x"]  # v, the least recently active, went


def test_a_batch_of_users_read_back_is_evicted_for_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading back n users for a batch does not scan the memory n times (it was O(n^2))."""
    store = InMemoryStore()
    first = engine_over(store, list(range(32)))
    first.observe([feedback(f"u{n}", f"i{n % 32}", n) for n in range(50)])
    engine = engine_over(store, list(range(32)), ObjectiveSettings(max_users=20))
    calls: list[int] = []
    original = ObjectiveMemory._evict
    monkeypatch.setattr(ObjectiveMemory, "_evict", lambda self, keep: calls.append(1) or original(self, keep))
    engine.observe([feedback(f"u{n}", f"i{(n + 1) % 32}", 100 + n) for n in range(50)])
    assert len(calls) == 1
    assert engine.objectives is not None and len(engine.objectives.memory.users) == 50  # the batch, kept whole
    assert served(engine_over(store, list(range(32))), "u7") == ALL - {"i7", "i8"}
