"""The delayed-feedback join decides labels by event time, whatever the arrival order."""

import numpy as np

from online.policies.base import FeedbackBatch
from online.policies.delayed_join import DelayedJoin


def rows(spec: list[tuple[str, str, float, float, float]]) -> FeedbackBatch:
    """spec rows: (request, item, exposure, reward, time)."""
    m = len(spec)
    return FeedbackBatch.from_rows(
        ("u",) * m, tuple(s[1] for s in spec), tuple(s[0] for s in spec), ("feed",) * m,
        np.zeros(m, dtype=np.int64), np.array([s[2] for s in spec]), np.array([s[3] for s in spec]),
        np.ones((m, 2)), np.array([s[4] for s in spec]),
    )


def test_click_within_window_labels_one_at_once() -> None:
    join = DelayedJoin(window_s=10)
    out = join.consume(rows([("r", "a", 1, 0, 0.0), ("r", "b", 1, 0, 0.0), ("r", "a", 0, 1, 3.0)]))
    assert [(e.item_id, e.label) for e in out] == [("a", 1.0)]
    assert set(join.pending) == {("r", "b")}


def test_window_close_labels_zero() -> None:
    join = DelayedJoin(window_s=10)
    join.consume(rows([("r", "a", 1, 0, 0.0)]))
    out = join.consume(rows([("s", "b", 1, 0, 11.0)]))
    assert [(e.item_id, e.label) for e in out] == [("a", 0.0)]


def test_click_before_impression_still_labels_one() -> None:
    join = DelayedJoin(window_s=10)
    assert join.consume(rows([("r", "a", 0, 1, 1.0)])) == []
    out = join.consume(rows([("r", "a", 1, 0, 0.5)]))
    assert [(e.item_id, e.label) for e in out] == [("a", 1.0)]


def test_orphan_clicks_expire_and_are_counted() -> None:
    join = DelayedJoin(window_s=10)
    join.consume(rows([("r", "a", 0, 1, 0.0)]))
    join.consume(rows([("s", "b", 1, 0, 20.0)]))
    assert join.orphan_clicks == 1 and not join.early_clicks


def test_columns_round_trip() -> None:
    join = DelayedJoin(window_s=10)
    join.consume(rows([("r", "a", 1, 0, 0.0), ("q", "z", 0, 1, 1.0)]))
    meta, arrays = join.to_columns()
    restored = DelayedJoin.from_columns(meta, arrays)
    assert restored.pending.keys() == join.pending.keys()
    assert restored.early_clicks == join.early_clicks and restored.watermark_s == join.watermark_s


def test_expiry_follows_event_time_whatever_the_arrival_order_and_survives_decoding() -> None:
    join = DelayedJoin(window_s=10)
    join.consume(rows([("r", "b", 1, 0, 5.0), ("r", "a", 1, 0, 1.0), ("r", "c", 1, 0, 8.0), ("r", "c", 0, 1, 9.0)]))
    restored = DelayedJoin.from_columns(*join.to_columns())
    for state in (join, restored):
        first = state.copy().consume(rows([("s", "x", 1, 0, 12.0)]))
        assert [(e.item_id, e.label) for e in first] == [("a", 0.0)]  # 1 + 10 < 12 only
        later = state.copy().consume(rows([("s", "x", 1, 0, 16.0)]))
        assert [(e.item_id, e.label) for e in later] == [("a", 0.0), ("b", 0.0)]  # c was clicked
    assert set(join.pending) == {("r", "a"), ("r", "b")}  # copies leave the original as it was
