"""build_feedback_batch: the all-known fast path and the rejecting path give the same rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from online.events import Click, Impression, ShownItem
from online.features import ItemFeatures
from online.feedback import RequestContexts, build_feedback_batch
from online.policies.base import FeedbackBatch
from online.wire import FeedbackEvent

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def seeded_events(rng: np.random.Generator, n: int, n_items: int) -> list[FeedbackEvent]:
    events: list[FeedbackEvent] = []
    for step in range(n):
        user, time = f"u{int(rng.integers(5))}", T0 + timedelta(seconds=step)
        shown = rng.choice(n_items, size=3, replace=False)
        events.append(Impression(event_id=f"e{step}", request_id=f"r{step}", user_id=user, time=time,
                                 shown=tuple(ShownItem(item_id=f"i{i}", position=p) for p, i in enumerate(shown)),
                                 context={"hour": float(step % 24)} if step % 2 else None))
        if rng.random() < 0.5:
            events.append(Click(event_id=f"c{step}", request_id=f"r{step}", user_id=user, item_id=f"i{shown[1]}",
                                time=time, reward=float(rng.random()) + 0.5))
    return events


def build(events: list[FeedbackEvent], index: dict[str, int], vectors: np.ndarray) -> tuple[FeedbackBatch, list, dict]:
    contexts = RequestContexts(1000)
    batch, rejected = build_feedback_batch(events, index, vectors, ItemFeatures(), contexts.remember, contexts.get)
    return batch, rejected, dict(contexts._contexts)


def assert_same(first: FeedbackBatch, second: FeedbackBatch) -> None:
    for name in ("users", "item_ids", "request_ids", "scenarios"):
        assert getattr(first, name) == getattr(second, name), name
    for name in ("user_index", "positions", "exposures", "rewards", "features", "times_s"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name), err_msg=name)


def test_a_batch_with_an_unknown_item_drops_exactly_its_events() -> None:
    """The rows of a batch where one impression and one click name an item the catalog lacks
    (the per-event path) equal the rows of the same batch without those two events (the fast
    path), and the contexts remembered are those of the kept impressions."""
    rng = np.random.default_rng(11)
    vectors = rng.standard_normal((20, 4)).astype(np.float32)
    index = {f"i{i}": i for i in range(20)}
    events = seeded_events(rng, 60, 20)
    bad_impression = Impression(event_id="ex", request_id="rx", user_id="u2", time=T0, context={"hour": 1.0},
                                shown=(ShownItem(item_id="i1", position=0), ShownItem(item_id="nope", position=1)))
    bad_click = Click(event_id="cx", request_id="r9", user_id="u1", item_id="gone", time=T0)
    mixed = [*events[:3], bad_impression, *events[3:10], bad_click, *events[10:]]
    slow, rejected, slow_contexts = build(mixed, index, vectors)
    fast, none, fast_contexts = build(events, index, vectors)
    assert none == [] and [event for event, _ in rejected] == [bad_impression, bad_click]
    assert [reason for _, reason in rejected] == ["unknown item id 'nope'", "unknown item id 'gone'"]
    assert_same(slow, fast)
    assert slow_contexts == fast_contexts and len(fast_contexts) == 30


def test_each_row_carries_its_events_scenario_in_one_scenario_and_mixed_batches() -> None:
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((20, 4)).astype(np.float32)
    index = {f"i{i}": i for i in range(20)}
    events = seeded_events(rng, 30, 20)
    one, _, _ = build(events, index, vectors)
    assert one.scenarios == ("default",) * len(one) and len(one) > len(events)
    mixed = [event.model_copy(update={"scenario": f"s{n % 3}"}) for n, event in enumerate(events)]
    batch, _, _ = build(mixed, index, vectors)
    rows_per_event = [len(event.shown) if event.type == "impression" else 1 for event in mixed]
    expected = tuple(event.scenario for event, rows in zip(mixed, rows_per_event, strict=True) for _ in range(rows))
    assert batch.scenarios == expected and len(set(expected)) == 3
