"""The exposure windows (novelty, fairness, "popular in") are snapshotted to the Engine's store
and loaded by the next Engine over it: they outlive a restart, up to `windows_snapshot_s`."""

from datetime import timedelta

import numpy as np
import pytest

from online.catalog import Catalog
from online.codec import pack_state, unpack_state
from online.engine import Engine, EngineConfig
from online.events import Click, Impression, Item, ShownItem
from online.objectives import Objectives, ObjectiveSettings
from online.objectives.memory import ExposureWindow, ObjectiveMemory
from online.objectives.window_codec import WindowSnapshotError, encode_windows, load_windows, snapshot_parts
from online.policies.linear_ts import LinearThompsonSampling
from online.state import InMemoryStore
from tests.online.objectives.conftest import T0, clustered_vectors

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
    """Every window's counts by item id / group name, so engines with other row orders compare
    (after loading the stored snapshot, as the first rank or observe would)."""
    engine.restore_soft_state()
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
    assert first.restore_soft_state() == "no snapshot stored"
    for n in range(12):
        feedback(first, n, [(5 * n + p) % 32 for p in range(4)], [(5 * n) % 32], "feed" if n % 2 else "ads",
                 seconds=70.0 * n)
    expected = windows_of(first)
    assert sum(expected["item"]) == 48 and sum(expected["group"]) == 48 and sum(expected["feed"]) == 6
    restarted = engine_over(store, list(range(31, -1, -1)))  # other rows: ids are stored
    assert restarted.restore_soft_state().startswith("loaded")
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
    head = store.get("linear_ts/objectives/windows/head")
    restarted = engine_over(store, list(range(32)))  # the cadence goes on from the stored snapshot
    feedback(restarted, 3, [4], [], "feed", seconds=100.0)
    assert store.get("linear_ts/objectives/windows/head") == head
    feedback(restarted, 4, [5], [], "feed", seconds=120.0)
    assert store.get("linear_ts/objectives/windows/head") != head


def test_a_smaller_snapshot_deletes_the_parts_it_no_longer_needs() -> None:
    store = InMemoryStore()
    engine = engine_over(store, list(range(32)))
    assert engine.stored_objectives.windows is not None
    engine.stored_objectives.windows.part_bytes = 110  # two keys of 53 bytes (48 of counts) per part
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
    assert other.restore_soft_state().startswith("snapshot not loaded")
    assert "6" in other.stored_objectives.windows_restored
    assert sum(windows_of(other)["item"]) == 0
    # a part from another snapshot under the head: nothing loaded, not a mix of the two
    window = ExposureWindow(86_400.0, 12)
    window.add(np.array([0]), np.array([1.0]))
    _, buckets, newest = window.snapshot()
    store.put("linear_ts/objectives/windows/0", pack_state("objective_windows", 1, {
        "serial": 1, "window": "item", "scenario": None, "keys": ["i0"], "newest": newest}, {"buckets": buckets}))
    torn = engine_over(store, list(range(32)))
    assert torn.restore_soft_state().startswith("snapshot not loaded") and sum(windows_of(torn)["item"]) == 0


def test_items_gone_from_the_catalog_are_dropped_and_zero_turns_snapshots_off() -> None:
    store = InMemoryStore()
    engine = engine_over(store, list(range(32)))
    feedback(engine, 0, [1, 30], [], "feed", seconds=0.0)
    fewer = engine_over(store, list(range(16)))  # i30 is not in this catalog
    assert fewer.restore_soft_state() == ("loaded 3 keys of the snapshot taken at 1767225600 s "  # i1, p0, p3
                                    "(1 items the catalog does not hold dropped)")
    assert fewer.objectives is not None and fewer.objectives.memory.item_exposure.total == 1
    off = engine_over(InMemoryStore(), list(range(32)), SETTINGS.model_copy(update={"windows_snapshot_s": 0.0}))
    feedback(off, 0, [1], [], "feed", seconds=0.0)
    assert off.stored_objectives.windows is None and not list(off.store.scan_prefix("linear_ts/objectives/windows"))


def test_a_restart_mid_stream_ends_with_the_windows_of_no_restart() -> None:
    """Events over three days (window one day, 12 buckets of 2 h) with restarts: the restarted
    engines' windows end equal to an engine that never restarted (bucket alignment, expiry)."""
    settings = SETTINGS.model_copy(update={"windows_snapshot_s": 1.0})  # a snapshot every batch
    steady = engine_over(InMemoryStore(), list(range(32)), settings)
    store = InMemoryStore()
    restarted = engine_over(store, list(range(32)), settings)
    rng = np.random.default_rng(4)
    for n in range(40):
        shown = rng.choice(32, size=3, replace=False).tolist()
        seconds = 6_500.0 * n  # ~1.8 h apart: crosses bucket boundaries, expires old buckets
        for engine in (steady, restarted):
            feedback(engine, n, shown, shown[:1], "feed" if n % 3 else "ads", seconds)
        if n % 7 == 6:
            restarted = engine_over(store, list(range(31, -1, -1)) if n % 2 else list(range(32)), settings)
        assert windows_of(restarted) == windows_of(steady), n
    assert 0 < sum(windows_of(steady)["item"]) < 120  # some expired


def test_parts_stay_within_their_byte_budget_whatever_the_ids() -> None:
    settings = ObjectiveSettings(window_buckets=48)
    memory = ObjectiveMemory(settings)
    catalog = Catalog(dim=VECTORS.shape[1])
    ids = [f"{'é' * 100}-{n:05d}-{'x' * 149}" for n in range(3000)]  # 256 characters, JSON-escaped to ~760 bytes
    catalog.upsert([Item(item_id=i, fields={"t": "t"}, time=T0) for i in ids], np.repeat(VECTORS[:1], 3000, axis=0))
    memory.item_exposure.add(np.arange(3000), np.linspace(0.0, 80_000.0, 3000))
    head, parts = encode_windows(memory, catalog, 80_000.0, part_bytes=200_000)
    assert snapshot_parts(head) == (len(parts), 80_000.0, 0)
    assert len(parts) > 1 and max(len(part) for part in parts) <= 200_000 + 1_000  # + the part's header
    restored = ObjectiveMemory(settings)
    assert load_windows(restored, head, parts, catalog) == (3000, 0)
    np.testing.assert_array_equal(restored.item_exposure.counts(np.arange(3000)), np.ones(3000))


def test_an_engine_built_before_its_items_loads_them_at_its_first_use() -> None:
    store = InMemoryStore()
    feedback(engine_over(store, list(range(32))), 0, [1, 2], [], "feed", seconds=0.0)
    empty = Engine(LinearThompsonSampling(), store, Catalog(dim=VECTORS.shape[1]), np.random.default_rng(1),
                   config=EngineConfig(n_draws=8), objectives=Objectives(SETTINGS))
    empty.add_items([Item(item_id=f"i{r}", fields={"t": str(r)}, provider=f"p{r // 8}", time=T0) for r in range(32)],
                    VECTORS)
    feedback(empty, 1, [3], [], "feed", seconds=120.0)  # loads first, then learns, then snapshots
    assert windows_of(empty)["item"][1:4] == [1.0, 1.0, 1.0]
    assert windows_of(engine_over(store, list(range(32))))["item"][1:4] == [1.0, 1.0, 1.0]


def test_a_malformed_part_is_reported_and_leaves_the_windows_and_old_parts_in_order() -> None:
    store = InMemoryStore()
    engine = engine_over(store, list(range(32)))
    assert engine.stored_objectives.windows is not None
    engine.stored_objectives.windows.part_bytes = 110
    feedback(engine, 0, [1, 2, 3, 4, 5], [1], "feed", seconds=0.0)  # 3 item parts, 1 group, 1 scenario
    for meta in ({"serial": 1, "window": "item", "keys": ["i1"], "newest": 0},  # no scenario
                 {"serial": 1, "window": "scenario", "scenario": None, "keys": ["i1"], "newest": 0},
                 {"serial": 1, "window": "item", "scenario": None, "keys": ["i1"], "newest": "x"}):
        store.put("linear_ts/objectives/windows/0", pack_state("objective_windows", 1, meta,
                                                              {"buckets": np.zeros((12, 1), dtype=np.int32)}))
        broken = engine_over(store, list(range(32)))
        assert broken.restore_soft_state().startswith("snapshot not loaded")
        assert sum(windows_of(broken)["item"]) == 0
    # the broken engine's first snapshot is smaller: the old parts beyond it are deleted
    assert broken.stored_objectives.windows is not None and broken.stored_objectives.windows.parts == 5
    feedback(broken, 1, [7], [], "feed", seconds=10.0)
    assert {key for key, _ in store.scan_prefix("linear_ts/objectives/windows/")} == {
        "linear_ts/objectives/windows/0", "linear_ts/objectives/windows/1", "linear_ts/objectives/windows/head"}


def test_a_group_name_too_large_for_any_part_is_left_out_and_counted() -> None:
    memory = ObjectiveMemory(ObjectiveSettings(fairness_group="brand"))
    catalog = Catalog(dim=VECTORS.shape[1])
    catalog.upsert([Item(item_id="i0", fields={"t": "t"}, time=T0)], VECTORS[:1])
    huge = "\x01" * 100_000  # JSON-escaped to 600 KB
    memory.observe(["u", "u"], ["feed", "feed"], np.array([0, 0]), np.array([1.0, 1.0]), np.array([0.0, 1.0]),
                   groups=[huge, "small"])
    head, parts = encode_windows(memory, catalog, 1.0)
    assert max(len(part) for part in parts) < 10_000
    restored = ObjectiveMemory(ObjectiveSettings(fairness_group="brand"))
    load_windows(restored, head, parts, catalog)
    assert restored.group_exposure.counts(np.array([restored.group_code("small")])).tolist() == [1.0]
    assert huge not in restored.group_codes
    assert unpack_state(head, "objective_windows_head", 1).meta["left_out"] == 1


def test_two_snapshots_of_one_serial_do_not_mix_and_negative_counts_are_refused() -> None:
    memory = ObjectiveMemory(SETTINGS)
    catalog = Catalog(dim=VECTORS.shape[1])
    catalog.upsert([Item(item_id=f"i{r}", fields={"t": "t"}, time=T0) for r in range(4)], VECTORS[:4])
    memory.item_exposure.add(np.arange(4), np.zeros(4))
    head, parts = encode_windows(memory, catalog, 0.0, serial=7, part_bytes=110)
    _, others = encode_windows(memory, catalog, 0.0, serial=7, part_bytes=110)  # another writer, same serial
    assert len(parts) == 2
    with pytest.raises(WindowSnapshotError, match="under the head"):
        load_windows(ObjectiveMemory(SETTINGS), head, [parts[0], others[1]], catalog)
    assert load_windows(ObjectiveMemory(SETTINGS), head, parts, catalog) == (4, 0)
    state = unpack_state(parts[0], "objective_windows", 1)
    negative = pack_state("objective_windows", 1, state.meta, {"buckets": -state.arrays["buckets"]})
    with pytest.raises(WindowSnapshotError, match="malformed"):
        load_windows(ObjectiveMemory(SETTINGS), head, [negative, parts[1]], catalog)
    with pytest.raises(WindowSnapshotError):  # a header that is JSON but not an object
        load_windows(ObjectiveMemory(SETTINGS), b"SLST" + (2).to_bytes(4, "little") + b"[]", parts, catalog)
