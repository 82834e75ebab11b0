"""The exposure windows (novelty, fairness, "popular in") are snapshotted to the Engine's store
and loaded by the next Engine over it: they outlive a restart, up to `windows_snapshot_s`."""

from datetime import timedelta

import numpy as np

from online.catalog import Catalog
from online.codec import pack_state
from online.engine import Engine, EngineConfig
from online.events import Click, Impression, Item, ShownItem
from online.objectives import Objectives, ObjectiveSettings
from online.objectives.memory import ExposureWindow
from online.policies.linear_ts import LinearThompsonSampling
from online.state import InMemoryStore
from tests.objectives.conftest import T0, clustered_vectors

VECTORS = clustered_vectors(4, 8, 8, 0.15, seed=3)
SETTINGS = ObjectiveSettings(fairness=1.0, fairness_group="provider", windows_snapshot_s=60.0)


def engine_over(store: InMemoryStore, order: list[int], settings: ObjectiveSettings = SETTINGS) -> Engine:
    """An engine over items i<r> (provider p<r // 8>) added in `order`: rows differ between orders."""
    catalog = Catalog(dim=VECTORS.shape[1])
    catalog.upsert([Item(item_id=f"i{r}", fields={"t": str(r)}, provider=f"p{r // 8}", time=T0) for r in order],
                   VECTORS[order])
    return Engine(LinearThompsonSampling(), store, catalog, np.random.default_rng(1), config=EngineConfig(n_draws=8),
                  objectives=Objectives(settings))


def feedback(engine: Engine, n: int, shown: list[int], clicked: list[int], scenario: str, seconds: float) -> None:
    time = T0 + timedelta(seconds=seconds)
    events: list[Impression | Click] = [Impression(
        event_id=f"e{n}", request_id=f"q{n}", user_id=f"u{n % 3}", scenario=scenario, time=time,
        shown=tuple(ShownItem(item_id=f"i{r}", position=p) for p, r in enumerate(shown)))]
    events += [Click(event_id=f"c{n}-{r}", request_id=f"q{n}", user_id=f"u{n % 3}", item_id=f"i{r}",
                     scenario=scenario, time=time) for r in clicked]
    engine.observe(events)


def windows_of(engine: Engine) -> dict[str, list[float]]:
    """Every window's counts by item id / group name, so engines with other row orders compare."""
    assert engine.objectives is not None
    memory, catalog = engine.objectives.memory, engine.catalog
    rows = catalog.rows([f"i{r}" for r in range(32)])
    out = {"item": memory.item_exposure.counts(rows).tolist(),
           "group": memory.group_exposure.counts(np.array([memory.group_code(f"p{g}") for g in range(4)])).tolist()}
    for scenario in ("feed", "ads"):
        out[scenario] = memory.scenario_click_counts(scenario, rows).tolist()
    return out


def test_a_new_engine_over_the_store_starts_from_the_snapshot() -> None:
    store = InMemoryStore()
    first = engine_over(store, list(range(32)))
    assert first.windows_restored == "no snapshot stored"
    for n in range(12):
        feedback(first, n, [(5 * n + p) % 32 for p in range(4)], [(5 * n) % 32], "feed" if n % 2 else "ads",
                 seconds=70.0 * n)
    expected = windows_of(first)
    assert sum(expected["item"]) == 48 and sum(expected["group"]) == 48 and sum(expected["feed"]) == 6
    restarted = engine_over(store, list(range(31, -1, -1)))  # other rows: ids are stored
    assert restarted.windows_restored.startswith("loaded")
    assert windows_of(restarted) == expected
    # the restarted windows go on from there: the next events add to the loaded counts
    feedback(restarted, 12, [0], [], "feed", seconds=70.0 * 12)
    assert windows_of(restarted)["item"][0] == expected["item"][0] + 1


def test_snapshots_are_taken_every_windows_snapshot_s_of_event_time() -> None:
    store = InMemoryStore()
    engine = engine_over(store, list(range(32)))
    feedback(engine, 0, [1], [], "feed", seconds=0.0)
    head = store.get("linear_ts/objectives/windows/head")
    feedback(engine, 1, [2], [], "feed", seconds=59.0)
    assert store.get("linear_ts/objectives/windows/head") == head  # not due yet: i2 only in memory
    assert windows_of(engine_over(store, list(range(32))))["item"][1:3] == [1.0, 0.0]
    feedback(engine, 2, [3], [], "feed", seconds=60.0)
    assert windows_of(engine_over(store, list(range(32))))["item"][1:4] == [1.0, 1.0, 1.0]


def test_a_smaller_snapshot_deletes_the_parts_it_no_longer_needs() -> None:
    store = InMemoryStore()
    engine = engine_over(store, list(range(32)))
    assert engine.windows is not None
    engine.windows.chunk_keys = 2
    feedback(engine, 0, [1, 2, 3, 4, 5], [], "feed", seconds=0.0)  # 5 items, 2 groups: 3 + 1 parts
    assert {key for key, _ in store.scan_prefix("linear_ts/objectives/windows/")} == {
        f"linear_ts/objectives/windows/{part}" for part in range(4)} | {"linear_ts/objectives/windows/head"}
    feedback(engine, 1, [6], [], "feed", seconds=2 * 86_400.0)  # the first five expired
    assert {key for key, _ in store.scan_prefix("linear_ts/objectives/windows/")} == {
        "linear_ts/objectives/windows/0", "linear_ts/objectives/windows/1", "linear_ts/objectives/windows/head"}
    assert windows_of(engine_over(store, list(range(32))))["item"][1:7] == [0, 0, 0, 0, 0, 1]


def test_a_torn_or_mismatched_snapshot_is_not_loaded() -> None:
    store = InMemoryStore()
    engine = engine_over(store, list(range(32)))
    feedback(engine, 0, [1, 2], [1], "feed", seconds=0.0)
    feedback(engine, 1, [3], [], "feed", seconds=100.0)
    assert store.get("linear_ts/objectives/windows/0") is not None
    other = engine_over(store, list(range(32)), SETTINGS.model_copy(update={"window_buckets": 6}))
    assert other.windows_restored.startswith("snapshot not loaded") and "6" in other.windows_restored
    assert sum(windows_of(other)["item"]) == 0
    # a part from another snapshot under the head: nothing loaded, not a mix of the two
    window = ExposureWindow(86_400.0, 12)
    window.add(np.array([0]), np.array([1.0]))
    _, buckets, newest = window.snapshot()
    store.put("linear_ts/objectives/windows/0", pack_state("objective_windows", 1, {
        "taken": 1.0, "window": "item", "scenario": None, "keys": ["i0"], "newest": newest}, {"buckets": buckets}))
    torn = engine_over(store, list(range(32)))
    assert torn.windows_restored.startswith("snapshot not loaded") and sum(windows_of(torn)["item"]) == 0


def test_items_gone_from_the_catalog_are_dropped_and_zero_turns_snapshots_off() -> None:
    store = InMemoryStore()
    engine = engine_over(store, list(range(32)))
    feedback(engine, 0, [1, 30], [], "feed", seconds=0.0)
    fewer = engine_over(store, list(range(16)))  # i30 is not in this catalog
    assert fewer.windows_restored == "loaded 3 keys of the snapshot taken at 1767225600 s"  # i1, p0, p3
    assert fewer.objectives is not None and fewer.objectives.memory.item_exposure.total == 1
    off = engine_over(InMemoryStore(), list(range(32)), SETTINGS.model_copy(update={"windows_snapshot_s": 0.0}))
    feedback(off, 0, [1], [], "feed", seconds=0.0)
    assert off.windows is None and not list(off.store.scan_prefix("linear_ts/objectives/windows"))
