"""The river policy's persistent state: versions stay intact, parts restore it exactly."""

from datetime import UTC, datetime, timedelta

import numpy as np

from online.catalog import Catalog
from online.engine import Engine
from online.events import Click, Impression, Item, ShownItem
from online.policies.base import FeedbackBatch
from online.policies.river_ctr import RiverCTR, RiverCTRParams
from online.policies.river_state import RiverState
from online.state import InMemoryStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def snapshot(state: RiverState) -> tuple[object, ...]:
    join = state.join
    return (dict(state.weights.items()), state.intercept, state.n_iterations, list(join.pending),
            [(r.user_id, r.position, r.time_s, r.features.tolist()) for r in join.pending.values()],
            dict(join.early_clicks), join.watermark_s, join.orphan_clicks)


def rows(rng: np.random.Generator, start: float, m: int = 30) -> FeedbackBatch:
    """Exposures and clicks (some before their exposure, some on nothing shown) of 6 requests."""
    exposure = (rng.random(m) < 0.7).astype(float)
    return FeedbackBatch.from_rows(
        [f"u{n % 4}" for n in range(m)], [f"i{rng.integers(8)}" for _ in range(m)],
        [f"r{int(start) + rng.integers(6)}" for _ in range(m)], ["feed"] * m, np.zeros(m, dtype=np.int64),
        exposure, 1.0 - exposure, rng.standard_normal((m, 3)), start + rng.random(m) * 50,
    )


def test_river_learns_only_the_weights_of_the_features_it_sees() -> None:
    """What river_state relies on (the installed river): learn_one changes x's weights, the
    intercept and the step count, nothing else."""
    policy = RiverCTR()
    model = policy._new_model()
    for slot in range(50):
        model._weights[slot] = 0.1 * slot
    model.learn_one({3: 1.0, 70: -0.5}, True)
    assert {slot: model._weights[slot] for slot in range(50) if slot != 3} == {s: 0.1 * s for s in range(50) if s != 3}
    assert model._weights[3] != 0.3 and model._weights[70] != 0.0 and model.optimizer.n_iterations == 1


def test_every_version_stays_intact_through_branching_learning() -> None:
    policy = RiverCTR(RiverCTRParams(window_s=60.0))
    rng = np.random.default_rng(0)
    states = [policy.init_global(3)]
    expected = [snapshot(states[0])]
    for step in range(40):
        parent = int(rng.integers(len(states)))
        batch = rows(rng, 40.0 * step)
        fresh, _ = policy.learn(policy.decode_global(policy.encode_global(states[parent])), {}, batch)
        learned, _ = policy.learn(states[parent], {}, batch)
        assert snapshot(learned) == snapshot(fresh)  # as if the parent had been copied
        states.append(learned)
        expected.append(snapshot(learned))
        probe = int(rng.integers(len(states)))
        assert snapshot(states[probe]) == expected[probe]
    assert all(snapshot(state) == want for state, want in zip(states, expected, strict=True))
    assert states[-1].n_iterations > 0 and len(states[-1].join.pending) > 0


def feedback(step: int, rng: np.random.Generator) -> list[Impression | Click]:
    time = T0 + timedelta(seconds=40 * step)
    shown = tuple(ShownItem(item_id=f"i{n}", position=p) for p, n in enumerate(rng.choice(20, 4, replace=False)))
    events: list[Impression | Click] = [Impression(event_id=f"e{step}", request_id=f"r{step}", user_id=f"u{step % 3}",
                                                   shown=shown, time=time)]
    if rng.random() < 0.5:
        events.append(Click(event_id=f"c{step}", request_id=f"r{step}", user_id=f"u{step % 3}",
                            item_id=shown[0].item_id, time=time))
    if rng.random() < 0.2:  # a click before its impression arrives
        events.insert(0, Click(event_id=f"x{step}", request_id=f"r{step + 1}", user_id="u0", item_id="i1", time=time))
    return events


def test_the_parts_in_a_store_restore_the_state_exactly() -> None:
    store = InMemoryStore()
    catalog = Catalog(dim=3)
    catalog.upsert([Item(item_id=f"i{n}", fields={"t": "x"}) for n in range(20)],
                   np.random.default_rng(1).standard_normal((20, 3)).astype(np.float32))
    engine = Engine(RiverCTR(RiverCTRParams(window_s=100.0)), store, catalog, np.random.default_rng(0))
    rng = np.random.default_rng(2)
    for step in range(60):
        engine.observe(feedback(step, rng))
        if step % 20 == 19:
            restored = Engine(engine.policy, store, catalog, np.random.default_rng(0))
            assert snapshot(restored.global_state) == snapshot(engine.global_state)
    assert len(engine.global_state.join.pending) > 0 and engine.global_state.n_iterations > 0
    parts = [key for key, _ in store.scan_prefix("river_ctr/global#")]
    pending = {key for key in parts if key.startswith("river_ctr/global#p")}
    assert len(pending) == len(engine.global_state.join.pending)  # labelled and expired ones were deleted
    assert all(value for _, value in store.scan_prefix("river_ctr/global#"))  # no empty part left


def test_the_join_is_rebuilt_after_a_mass_expiry_and_versions_stay_intact() -> None:
    """3,000 exposures, then a batch past their window labels them all: the join's dicts are
    rebuilt (their removed slots would be scanned at every later batch), every version still
    reads as it was, and learning on from either agrees with a decoded copy."""
    policy = RiverCTR(RiverCTRParams(window_s=60.0))
    rng = np.random.default_rng(5)
    m = 3000
    exposures = FeedbackBatch.from_rows(
        [f"u{n % 7}" for n in range(m)], [f"i{n % 50}" for n in range(m)], [f"r{n}" for n in range(m)],
        ["feed"] * m, np.zeros(m, dtype=np.int64), np.ones(m), np.zeros(m), rng.standard_normal((m, 3)),
        np.zeros(m),
    )
    before, _ = policy.learn(policy.init_global(3), {}, exposures)
    pending_dict = before.join.pending
    expected_before = snapshot(before)
    after, _ = policy.learn(before, {}, rows(rng, 1000.0))
    assert after.join.pending is not pending_dict and len(after.join.pending) < 100
    assert snapshot(before) == expected_before  # the older version, read after the rebuild
    later = rows(np.random.default_rng(6), 1000.0)
    again, _ = policy.learn(before, {}, later)
    fresh, _ = policy.learn(policy.decode_global(policy.encode_global(before)), {}, later)
    assert snapshot(again) == snapshot(fresh)
