"""The msgspec fast path accepts only what decode_event accepts, with equal values."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from online.events import Click, EventDecodeError, Impression, decode_event
from online.wire import WireClick, WireImpression, decode_feedback_fast, decode_feedback_many

IMPRESSION: dict[str, Any] = {
    "schema_version": 1, "type": "impression", "event_id": "e1", "request_id": "r1", "user_id": "u1",
    "scenario": "feed", "shown": [{"item_id": "i1", "position": 0, "propensity": 0.5},
                                  {"item_id": "i2", "position": 1}],
    "context": {"hour": 3.0}, "time": "2026-01-01T00:00:00.250000Z",
}
CLICK: dict[str, Any] = {
    "schema_version": 1, "type": "click", "event_id": "e2", "request_id": "r1", "user_id": "u1",
    "item_id": "i1", "scenario": "feed", "reward_kind": "click", "reward": 1.0, "time": "2026-01-01T00:00:01Z",
}
TRICKY: list[Any] = [
    "", " ", " u1", "u1 ", "\u00a0u", "u\u3000", "\u2028", "x" * 256, "x" * 257, "i1", "i2", "feed", "default",
    0, 1, -1, 2, 1.0, 0.5, 1.5, -0.0, 1e6, 1e6 + 1, 2**63, True, False, None, "1", "0.5", [], {}, [1], {"a": 1},
    {" a ": 1.0}, {"a": "x"}, float("nan"), float("inf"),
    "2026-01-01T00:00:00Z", "2026-01-01T00:00:00", "2026-01-01T00:00:00+01:00", "2026-01-01T00:00:00.1234567Z",
    "2026-01-01t00:00:00z", "2026-01-01 00:00:00Z", "2026-02-30T00:00:00Z", "2026-01-01T00:00Z", "2026-01-01",
    "2016-12-31T23:59:60Z", "2026-01-01T00:00:00.5-23:59", 1_700_000_000, "impression", "click", "item",
    [{"item_id": "i1", "position": 0}, {"item_id": "i1", "position": 1}], [{"item_id": " i1 ", "position": 0}],
    [{"item_id": "i1", "position": 0, "extra": 1}], [{"item_id": "i1", "position": 0, "propensity": 0.0}],
    "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z",
    2**31 - 1, 2**31, 10**30, 1e12, 1.5e12, {"a": 1e12}, {"a": -1e13}, {"a": float("nan")}, {"a": float("inf")},
    [{"item_id": "i1", "position": 2**31}], [{"item_id": "i1", "position": 2**31 - 1}],
    1 / 3, 0.123456789, {"a": 2 / 3}, [{"item_id": "i1", "position": 0, "propensity": 1 / 3}],
    "2026-01-01T00:00:00.999999949Z", "2026-01-01T00:00:00.1234567+01:00",
]


def _fields(event: Any) -> dict[str, Any]:
    """Every field of an impression or click, shown items as tuples, for comparison."""
    names = Impression.model_fields if event.type == "impression" else Click.model_fields
    out = {name: getattr(event, name) for name in names}
    if "shown" in out:
        out["shown"] = tuple((s.item_id, s.position, s.propensity) for s in out["shown"])
    return out


def _mutate(base: dict[str, Any], rng: np.random.Generator) -> dict[str, Any] | bytes:
    event = json.loads(json.dumps(base))
    kind = rng.integers(7)
    keys = sorted(event)
    if kind == 0:
        del event[keys[rng.integers(len(keys))]]
    elif kind == 1:
        event[f"extra{rng.integers(3)}"] = 1
    elif kind == 2 and "shown" in event:
        shown = event["shown"][rng.integers(len(event["shown"]))]
        shown[sorted(shown)[rng.integers(len(shown))]] = TRICKY[rng.integers(len(TRICKY))]
    elif kind == 3:
        raw = json.dumps(event).encode()
        return raw[: rng.integers(len(raw))]
    else:
        for _ in range(1 + rng.integers(2)):
            event[keys[rng.integers(len(keys))]] = TRICKY[rng.integers(len(TRICKY))]
    return event


@pytest.mark.parametrize("base", [IMPRESSION, CLICK], ids=["impression", "click"])
def test_fast_path_agrees_with_decode_event_on_a_fuzzed_corpus(base: dict[str, Any]) -> None:
    rng = np.random.default_rng(20261123)
    expected = base["type"]
    accepted = vouched = 0
    for _ in range(3_000):
        mutated = _mutate(base, rng)
        raw = mutated if isinstance(mutated, bytes) else json.dumps(mutated).encode()
        fast = decode_feedback_fast(raw, expected)
        try:
            slow = decode_event(raw)
        except EventDecodeError:
            assert fast is None, raw
            continue
        if slow.type != expected:
            assert fast is None, raw
            continue
        accepted += 1
        if fast is not None:
            vouched += 1
            assert _fields(fast) == _fields(slow), raw
            assert fast.time.tzinfo is UTC
    # the corpus is not vacuous: both paths see plenty of valid events, the fast one most of them
    assert accepted > 400
    assert vouched > 0.6 * accepted


def test_unmutated_events_take_the_fast_path_with_equal_values() -> None:
    for base, struct in ((IMPRESSION, WireImpression), (CLICK, WireClick)):
        raw = json.dumps(base).encode()
        fast = decode_feedback_fast(raw, base["type"])
        assert isinstance(fast, struct)
        assert _fields(fast) == _fields(decode_event(raw))


@pytest.mark.parametrize(("field", "value"), [
    ("user_id", " u1"),  # pydantic strips it
    ("time", "2026-01-01T00:00:00.1234567Z"),  # pydantic truncates, msgspec would round
    ("reward", "1"),  # pydantic coerces the string
])
def test_what_pydantic_would_change_is_left_to_it(field: str, value: Any) -> None:
    raw = json.dumps({**CLICK, field: value}).encode()
    assert decode_feedback_fast(raw, "click") is None
    assert isinstance(decode_event(raw), Click)


def test_long_float_fractions_take_the_fast_path_with_equal_values() -> None:
    """A slate's propensities (`impression_for` copies them) have 16-17 digits; only a time's
    fraction beyond microseconds is left to pydantic."""
    shown = [{"item_id": f"i{k}", "position": k, "propensity": 1 / 3 + k / 7} for k in range(3)]
    for base, changes in ((IMPRESSION, {"shown": shown, "context": {"hour": 0.123456789}}),
                          (CLICK, {"reward": 2 / 3})):
        raw = json.dumps({**base, **changes}).encode()
        fast = decode_feedback_fast(raw, base["type"])
        assert fast is not None and _fields(fast) == _fields(decode_event(raw)), raw
        longer = json.dumps({**base, **changes, "time": "2026-01-01T00:00:00.1234567Z"}).encode()
        assert decode_feedback_fast(longer, base["type"]) is None
        assert decode_event(longer).time.microsecond == 123456  # pydantic truncates


def test_offset_times_come_out_in_utc() -> None:
    fast = decode_feedback_fast(json.dumps({**CLICK, "time": "2026-01-01T01:00:00+01:00"}).encode(), "click")
    assert fast is not None
    assert fast.time == datetime(2026, 1, 1, tzinfo=UTC) and fast.time.tzinfo is UTC


def test_an_event_of_another_type_is_not_vouched_for() -> None:
    assert decode_feedback_fast(json.dumps(CLICK).encode(), "impression") is None


def test_a_batch_decodes_each_value_as_its_own_kind_as_one_at_a_time_would() -> None:
    """`decode_feedback_many` over a mixed, fuzzed batch (impressions and clicks interleaved,
    some read as the other kind, some not JSON) gives, in order, what `decode_feedback_fast`
    gives for each value alone."""
    rng = np.random.default_rng(20261207)
    values: list[bytes] = []
    kinds: list[Any] = []
    for _ in range(2_000):
        base = (IMPRESSION, CLICK)[rng.integers(2)]
        mutated = _mutate(base, rng) if rng.random() < 0.7 else base
        values.append(mutated if isinstance(mutated, bytes) else json.dumps(mutated).encode())
        kinds.append(base["type"] if rng.random() < 0.9 else ("click" if base is IMPRESSION else "impression"))
    batch = decode_feedback_many(values, kinds)
    alone = [decode_feedback_fast(value, kind) for value, kind in zip(values, kinds, strict=True)]
    assert len(batch) == len(values)
    assert [None if e is None else _fields(e) for e in batch] == [None if e is None else _fields(e) for e in alone]
    assert 0.25 * len(values) < sum(e is not None for e in batch) < 0.75 * len(values)  # many of both outcomes
