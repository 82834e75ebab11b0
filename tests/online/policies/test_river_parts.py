"""river_ctr learns on a persistent weight table and stores its item weights one part each:
the same values as a whole river model, older states untouched, only changed parts written."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from online.catalog import Catalog
from online.codec import StateCodecError
from online.engine import Engine
from online.events import Click, Impression, Item, ShownItem
from online.policies.base import FeedbackBatch, RankContext
from online.policies.delayed_join import DelayedJoin, LabelledExample
from online.policies.linear_stats import LinearStats
from online.policies.river_ctr import RiverCTR, RiverCTRParams, RiverState
from online.state import InMemoryStore
from tests.online.stores import CountingStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PREFIX = "river_ctr/global#"


def engine(store: InMemoryStore, n_items: int = 50) -> Engine:
    catalog = Catalog(dim=2)
    catalog.upsert([Item(item_id=f"i{n}", fields={"t": "x"}) for n in range(n_items)],
                   np.random.default_rng(0).standard_normal((n_items, 2)).astype(np.float32))
    return Engine(RiverCTR(RiverCTRParams(window_s=120.0)), store, catalog, np.random.default_rng(0))


def shown(step: int, items: list[int], seconds: float) -> list[Impression | Click]:
    """An impression of `items` and a click on the first a second later."""
    time = T0 + timedelta(seconds=seconds)
    return [Impression(event_id=f"e{step}", request_id=f"r{step}", user_id="u", time=time,
                       shown=tuple(ShownItem(item_id=f"i{n}", position=p) for p, n in enumerate(items))),
            Click(event_id=f"c{step}", request_id=f"r{step}", user_id="u", item_id=f"i{items[0]}",
                  time=time + timedelta(seconds=1))]


def item_parts(keys: list[str]) -> list[str]:
    return sorted(key for key in keys if key.startswith(PREFIX))


def same_state(policy: RiverCTR, a: RiverState, b: RiverState) -> None:
    assert a.weights.to_dict() == b.weights.to_dict()
    assert (a.weights.intercept, a.n_iterations) == (b.weights.intercept, b.n_iterations)
    assert a.join.pending.keys() == b.join.pending.keys()
    assert policy.bandit.encode_global(a.population) == policy.bandit.encode_global(b.population)


def test_only_the_item_weights_a_batch_changed_are_written() -> None:
    store = CountingStore()
    first = engine(store)
    first.observe(shown(0, list(range(40)), 0.0))  # the click labels (r0, i0); 39 exposures wait
    first.observe(shown(1, [3, 45], 2.0))
    assert item_parts(store.batches[1]) == [f"{PREFIX}i=i3"]
    assert "river_ctr/global" in store.batches[1]
    first.observe(shown(2, [7], 1000.0))  # the window closes on r0 and r1: their unclicked exposures learned
    assert item_parts(store.batches[2]) == sorted({f"{PREFIX}i=i{n}" for n in [*range(1, 40), 45]})
    restored = engine(store)  # reads the head and every part
    same_state(first.policy, restored.global_state, first.global_state)
    restored.observe(shown(3, [8], 1002.0))  # its first write: every item weight (it does not know the store)
    assert len(item_parts(store.batches[3])) == 41
    restored.observe(shown(4, [9], 1004.0))
    assert item_parts(store.batches[4]) == [f"{PREFIX}i=i9"]
    restored.observe(shown(5, [9], 1006.0)[:1])  # nothing labelled: no weight changed, no part written
    assert item_parts(store.batches[5]) == []
    same_state(first.policy, engine(store).global_state, restored.global_state)


def test_a_whole_blob_of_an_older_store_still_loads() -> None:
    store = InMemoryStore()
    source = engine(store)
    source.observe(shown(0, [1, 2], 0.0))
    policy = source.policy
    assert isinstance(policy, RiverCTR)
    old = InMemoryStore()
    old.put("river_ctr/global", policy.encode_global(source.global_state))
    old.put(f"{PREFIX}i=i1", b"stale part, ignored under a whole head")
    same_state(policy, engine(old).global_state, source.global_state)


def test_hostile_heads_and_parts_are_refused() -> None:
    policy = RiverCTR()
    state = policy.init_global(2)
    head, _ = policy.encode_global_parts(state, None)
    with pytest.raises(StateCodecError, match="stored in parts"):
        policy.decode_global(head)
    with pytest.raises(StateCodecError, match="item weight"):
        policy.decode_global_parts(head, [("i=a", b"\x01short")])
    with pytest.raises(StateCodecError, match="item weight"):
        policy.decode_global_parts(head, [("lin", b"\x01" + bytes(8))])
    with pytest.raises(StateCodecError, match="no head"):
        policy.decode_global_parts(None, [])
    assert policy.decode_global_parts(head, [("i=a", b"")]).weights.to_dict() == state.weights.to_dict()


def examples(rng: np.random.Generator, n: int) -> list[LabelledExample]:
    return [LabelledExample(f"u{k % 5}", f"i{rng.integers(300)}", ["feed", "home"][k % 2], int(rng.integers(-1, 6)),
                            np.array([rng.standard_normal()]), float(rng.random() < 0.2), float(k))
            for k in range(n)]


def test_learning_on_the_table_gives_the_whole_models_values_bitwise() -> None:
    policy = RiverCTR()
    rng = np.random.default_rng(4)
    state, whole = policy.init_global(2), policy.river_model(policy.init_global(2))
    for _ in range(20):
        batch = examples(rng, 50)
        before = state.weights.version_id
        state = policy.learn_examples(state, batch, state.join, state.population)
        for example in batch:
            whole.learn_one(policy.features(example), example.label > 0)
        assert state.weights.derived_from == before  # one new version per batch, not a copy
        assert set(state.weights.changed()) == {name for e in batch for name in policy.features(e)}
    assert state.weights.to_dict() == whole.weights
    assert state.weights.intercept == whole.intercept and state.n_iterations == whole.optimizer.n_iterations


def test_a_state_kept_from_before_a_learn_still_ranks_and_encodes_as_it_did() -> None:
    policy = RiverCTR(RiverCTRParams(window_s=10.0))
    rng = np.random.default_rng(5)
    x = rng.standard_normal((30, 3))
    state, users = policy.init_global(3), {}
    kept: list[tuple[RiverState, LinearStats | None, bytes, np.ndarray]] = []
    context = RankContext("u1", "feed", [f"i{n}" for n in range(30)], x)
    for step in range(6):
        rows = [int(n) for n in rng.choice(30, 8, replace=False)]
        batch = FeedbackBatch.from_rows(
            ["u1"] * 9, [f"i{n}" for n in rows] + [f"i{rows[0]}"], [f"r{step}"] * 9, ["feed"] * 9,
            np.array([*range(8), -1]), np.array([1.0] * 8 + [0.0]), np.array([0.0] * 8 + [1.0]),
            x[rows + rows[:1]], np.full(9, 20.0 * step))
        state, learned = policy.learn(state, users, batch)
        users |= learned
        draws = policy.sample_scores(state, users["u1"], context, np.random.default_rng(9), 4).draws
        kept.append((state, users["u1"], policy.encode_global(state), draws))
    assert len({blob for _, _, blob, _ in kept}) == len(kept)  # every step changed the state
    for state, user, blob, draws in [*kept[::-1], *kept]:  # old versions first, then back to the newest
        assert policy.encode_global(state) == blob
        again = policy.sample_scores(state, user, context, np.random.default_rng(9), 4).draws
        np.testing.assert_array_equal(again, draws)
    newest, previous = kept[-1][0], kept[-2][0]
    _, parts = policy.encode_global_parts(newest, previous)
    assert sorted(name for name, _ in parts) == sorted(n for n in newest.weights.changed() if n.startswith("i="))
    assert 0 < len(parts) < len(newest.weights)


def test_an_empty_join_state_round_trips_through_parts() -> None:
    policy = RiverCTR()
    state = policy.learn_examples(policy.init_global(2), examples(np.random.default_rng(6), 40),
                                  DelayedJoin(policy.params.window_s), policy.init_global(2).population)
    head, parts = policy.encode_global_parts(state, None)
    decoded = policy.decode_global_parts(head, [(name, blob) for name, blob in parts if blob is not None])
    same_state(policy, decoded, state)
    assert policy.encode_global(policy.decode_global(policy.encode_global(state))) == policy.encode_global(state)


def test_a_restart_from_parts_learns_on_as_if_uninterrupted() -> None:
    rng = np.random.default_rng(8)
    events = [event for step in range(40)
              for event in shown(step, [int(n) for n in rng.choice(50, 5, replace=False)], 30.0 * step)]
    whole, halves = engine(InMemoryStore()), InMemoryStore()
    for first in range(0, len(events), 4):
        whole.observe(events[first : first + 4])
    before = engine(halves)
    for first in range(0, len(events) // 2, 4):
        before.observe(events[first : first + 4])
    items = sorted(f"{PREFIX}{name}" for name in before.global_state.weights.to_dict() if name.startswith("i="))
    assert sorted(key for key, _ in halves.scan_prefix(PREFIX)) == items
    after = engine(halves)  # a new process: the head and the parts it finds
    for first in range(len(events) // 2, len(events), 4):
        after.observe(events[first : first + 4])
    assert len(after.global_state.weights) > 40
    same_state(whole.policy, after.global_state, whole.global_state)
