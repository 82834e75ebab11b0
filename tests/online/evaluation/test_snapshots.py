"""Fixed policies: a snapshot of learned state evaluated without learning, and a policy frozen
after learning on a prefix of the log."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from online.catalog import Catalog
from online.engine import Engine, EngineConfig
from online.evaluation.driver import DriverConfig, PolicyVariant, evaluate_log
from online.evaluation.snapshots import OverlayStore
from online.events import Item, RankRequest
from online.policies.arms import BernoulliThompsonSampling
from online.policies.linear_ts import LinearThompsonSampling
from online.state import InMemoryStore
from streams.testing.modules import load_module

DRIVER = load_module("driver_test_helpers", Path(__file__).with_name("test_driver.py"))
CTR = np.array([0.05, 0.1, 0.2, 0.3, 0.4, 0.6])
T0 = datetime(2024, 1, 1, tzinfo=UTC)
CONFIG = DriverConfig(n_bootstrap=300, engine=EngineConfig(n_draws=256))


def test_overlay_store_never_writes_its_base() -> None:
    base = InMemoryStore()
    base.put("a", b"1")
    base.put("b", b"2")
    overlay = OverlayStore(base)
    overlay.put("a", b"9")
    overlay.delete("b")
    overlay.put_many([("c", b"3")])
    assert (overlay.get("a"), overlay.get("b"), overlay.get("c")) == (b"9", None, b"3")
    assert dict(overlay.scan_prefix("")) == {"a": b"9", "c": b"3"}
    assert (base.get("a"), base.get("b"), base.get("c")) == (b"1", b"2", None)


class NonAtomicStore:
    """A StateStore whose put_many is not atomic (it says nothing, as the worker's tables)."""

    def __init__(self) -> None:
        self.inner = InMemoryStore()

    def get(self, key: str) -> bytes | None:
        return self.inner.get(key)

    def get_many(self, keys: Any) -> list[bytes | None]:
        return self.inner.get_many(keys)

    def put(self, key: str, value: bytes) -> None:
        self.inner.put(key, value)

    def put_many(self, items: Any) -> None:
        for key, value in items:
            self.inner.put(key, value)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def scan_prefix(self, prefix: str) -> Any:
        return self.inner.scan_prefix(prefix)

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize("base_kind", ["atomic", "not_atomic"])
def test_overlay_store_reads_and_writes_a_global_state_as_its_base_holds_it(base_kind: str) -> None:
    """bernoulli_ts keeps its global state in parts where put_many is atomic, whole elsewhere. An
    overlay says what its base says: over an atomic base it reads the head and its parts (read
    whole, the head alone holds no arm); over one that is not, what it writes (objectives'
    memory, a learning step) stays one value, as the base would hold it."""
    base: Any = InMemoryStore() if base_kind == "atomic" else NonAtomicStore()
    atomic = base_kind == "atomic"
    events = DRIVER.uniform_log(300, CTR, seed=15)
    items = [e for e in events if isinstance(e, Item)]
    feedback = [e for e in events if e.type in ("impression", "click")]
    learner = Engine(BernoulliThompsonSampling(), base, Catalog(dim=8), np.random.default_rng(0))
    learner.add_items(items, DRIVER.embed(items))
    learner.observe(feedback[: len(feedback) // 2])
    parts_prefix = f"{learner.global_key}#"
    assert any(True for _ in base.scan_prefix(parts_prefix)) == atomic  # the base holds it as its put_many allows
    overlay = OverlayStore(base)
    assert overlay.atomic_put_many == atomic
    reader = Engine(BernoulliThompsonSampling(), overlay, Catalog(dim=8), np.random.default_rng(0))
    ids = [item.item_id for item in items]
    for got, want in zip(reader.global_state.lookup(ids), learner.global_state.lookup(ids), strict=True):
        np.testing.assert_array_equal(got, want)
    assert reader.global_state.lookup(ids)[0].sum() > 0
    reader.add_items(items, DRIVER.embed(items))
    reader.observe(feedback[len(feedback) // 2 :])  # into the overlay's memory only
    assert any(True for _ in overlay.scan_prefix(parts_prefix)) == atomic


def trained_snapshot() -> InMemoryStore:
    """bernoulli_ts state after 3,000 uniformly random rounds of the same world."""
    events = DRIVER.uniform_log(3000, CTR, seed=11)
    store = InMemoryStore()
    catalog = Catalog(dim=8)
    engine = Engine(BernoulliThompsonSampling(), store, catalog, np.random.default_rng(0))
    items = [e for e in events if isinstance(e, Item)]
    engine.add_items(items, DRIVER.embed(items))
    engine.observe([e for e in events if e.type in ("impression", "click")])
    return store


def test_a_snapshot_is_evaluated_as_the_fixed_state_it_is() -> None:
    snapshot = trained_snapshot()
    before = dict(snapshot.scan_prefix(""))
    events = DRIVER.uniform_log(1500, CTR, seed=12)
    result = evaluate_log(events, [PolicyVariant(BernoulliThompsonSampling(), label="snap", state=snapshot)],
                          DRIVER.embed, 8, config=CONFIG)
    evaluation = result.policy("snap")
    assert not evaluation.learning and evaluation.counters["learned_events"] == 0
    assert dict(snapshot.scan_prefix("")) == before  # the snapshot is never written
    # its true value: the fixed state's top-1 probabilities (support mix included) times the CTRs
    catalog = Catalog(dim=8)
    items = [e for e in events if isinstance(e, Item)]
    engine = Engine(BernoulliThompsonSampling(), OverlayStore(snapshot), catalog, np.random.default_rng(5))
    engine.add_items(items, DRIVER.embed(items))
    top = np.bincount([int(engine.rank(RankRequest(request_id=f"q{i}", user_id="u", k=1, time=T0)).items[0]
                           .item_id[1:]) for i in range(20_000)], minlength=6) / 20_000
    truth = float(top @ CTR)
    dr = evaluation.estimates["dr"]
    assert abs(dr.value - truth) < 4 * (dr.ci_high - dr.ci_low) / (2 * 1.96) + 4 * np.sqrt(0.25 / 20_000)


def test_a_snapshot_of_another_dimension_is_refused() -> None:
    store = InMemoryStore()
    engine = Engine(LinearThompsonSampling(), store, Catalog(dim=4), np.random.default_rng(0))
    store.put(engine.global_key, engine.policy.encode_global(engine.global_state))  # learned at D = 5
    with pytest.raises(ValueError, match="learned over 5 features, this evaluation builds 9"):
        evaluate_log(DRIVER.uniform_log(5, CTR), [PolicyVariant(LinearThompsonSampling(), state=store)],
                     DRIVER.embed, 8, config=CONFIG)
    with pytest.raises(ValueError, match="no 'bernoulli_ts/global' key"):
        evaluate_log(DRIVER.uniform_log(5, CTR), [PolicyVariant(BernoulliThompsonSampling(), state=InMemoryStore())],
                     DRIVER.embed, 8, config=CONFIG)


def test_freeze_after_learns_on_the_prefix_and_is_evaluated_on_the_rest() -> None:
    events = DRIVER.uniform_log(400, CTR, seed=13)
    result = evaluate_log(events, ["bernoulli_ts", PolicyVariant("bernoulli_ts", label="bts@100", freeze_after=100)],
                          DRIVER.embed, 8, config=CONFIG)
    learning, frozen = result.policy("bernoulli_ts"), result.policy("bts@100")
    assert learning.learning and not frozen.learning and frozen.evaluated_from == 100
    assert frozen.counters["rounds"] == 300 and frozen.estimates["ips"].n == 300
    clicks_first_100 = sum(1 for e in events if e.type == "click" and int(e.request_id[1:]) < 100)
    assert frozen.counters["learned_events"] == 100 + clicks_first_100  # impressions and clicks of the prefix
    assert learning.estimates["ips"].n == 400
    with pytest.raises(ValueError, match="freeze_after"):
        PolicyVariant("bernoulli_ts", freeze_after=0)


def test_a_snapshot_is_evaluated_from_the_time_it_was_taken() -> None:
    events = DRIVER.uniform_log(400, CTR, seed=14)
    taken = next(e.time for e in events if isinstance(e, RankRequest) and e.request_id == "r100")
    snapshot = trained_snapshot()
    result = evaluate_log(events, [PolicyVariant(BernoulliThompsonSampling(), label="snap", state=snapshot,
                                                 since=taken)], DRIVER.embed, 8, config=CONFIG)
    evaluation = result.policy("snap")
    assert evaluation.snapshot and evaluation.evaluated_from == 100 and evaluation.counters["rounds"] == 300
    assert evaluation.counters["learned_events"] == 0
    with pytest.raises(ValueError, match="since"):
        PolicyVariant("bernoulli_ts", since=taken)  # only a snapshot has a time it was taken
