"""Hostile bytes never make the decoders raise anything but EventDecodeError (field, reason)."""

from __future__ import annotations

import json
from typing import Any

import pytest

import online.events as events
from online.events import MAX_POSITION, EventDecodeError, decode_event
from online.wire import decode_feedback_fast

IMPRESSION: dict[str, Any] = {
    "type": "impression", "event_id": "e1", "request_id": "r1", "user_id": "u1",
    "shown": [{"item_id": "i1", "position": 0}], "time": "2026-01-01T00:00:00Z",
}
CLICK: dict[str, Any] = {
    "type": "click", "event_id": "e2", "request_id": "r1", "user_id": "u1", "item_id": "i1",
    "time": "2026-01-01T00:00:01Z",
}
REQUEST: dict[str, Any] = {"type": "rank_request", "request_id": "r1", "user_id": "u1", "time": "2026-01-01T00:00:00Z"}
ITEM: dict[str, Any] = {"type": "item", "item_id": "i1", "fields": {"title": "t"}, "time": "2026-01-01T00:00:00Z"}
EXTREME_TIMES = ["9999-12-31T23:59:59-14:00", "9999-12-31T23:00:00-01:00", "0001-01-01T00:00:00+05:00",
                 "0001-01-01T00:00:00.000001+00:01"]


def _raw(base: dict[str, Any], **changes: Any) -> bytes:
    return json.dumps({**base, **changes}).encode()


@pytest.mark.parametrize("time", EXTREME_TIMES)
@pytest.mark.parametrize("base", [IMPRESSION, CLICK, REQUEST, ITEM], ids=lambda b: b["type"])
def test_a_time_utc_cannot_hold_names_the_time_field(base: dict[str, Any], time: str) -> None:
    raw = _raw(base, time=time)

    with pytest.raises(EventDecodeError) as caught:
        decode_event(raw)

    assert caught.value.field == f"{base['type']}.time"
    assert "out of range once converted to UTC" in caught.value.reason
    if base["type"] in ("impression", "click"):
        assert decode_feedback_fast(raw, base["type"]) is None


@pytest.mark.parametrize("time", ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59+14:00"])
def test_extreme_times_utc_can_hold_are_accepted_by_both_decoders(time: str) -> None:
    raw = _raw(IMPRESSION, time=time)

    slow = decode_event(raw)
    fast = decode_feedback_fast(raw, "impression")

    assert fast is not None and fast.time == slow.time


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", '"nan"', '"inf"', "1e400", "1.5e12", "-1e13"])
@pytest.mark.parametrize("base", [REQUEST, IMPRESSION], ids=lambda b: b["type"])
def test_context_values_must_be_finite_and_bounded(base: dict[str, Any], value: str) -> None:
    raw = json.dumps(base).encode()[:-1] + b', "context": {"a": ' + value.encode() + b"}}"

    with pytest.raises(EventDecodeError) as caught:
        decode_event(raw)

    assert caught.value.field == f"{base['type']}.context.a"
    assert "finite" in caught.value.reason or "1000000000000" in caught.value.reason
    if base is IMPRESSION:
        assert decode_feedback_fast(raw, "impression") is None


def test_context_at_its_bound_is_accepted() -> None:
    event = decode_event(_raw(IMPRESSION, context={"a": -1e12, "b": 1e12}))

    assert event.type == "impression" and event.context == {"a": -1e12, "b": 1e12}


@pytest.mark.parametrize("position", [MAX_POSITION + 1, 2**63, 10**30])
def test_huge_positions_are_refused_by_both_decoders(position: int) -> None:
    raw = _raw(IMPRESSION, shown=[{"item_id": "i1", "position": position}])

    with pytest.raises(EventDecodeError) as caught:
        decode_event(raw)

    assert caught.value.field == "impression.shown.0.position"
    assert decode_feedback_fast(raw, "impression") is None


HOSTILE: list[tuple[str, bytes]] = [
    ("deep nesting", b"[" * 100_000 + b"]" * 100_000),
    ("deep object", b'{"a":' * 50_000 + b"1" + b"}" * 50_000),
    ("huge int", b'{"type":"rank_request","request_id":"r","user_id":"u","k":' + b"9" * 5_000 + b"}"),
    ("non-UTF-8", b'{"type":"click","user_id":"\xff\xfe"}'),
    ("lone surrogate", b'{"type":"click","event_id":"\\ud800","request_id":"r","user_id":"u","item_id":"i"}'),
    ("huge string", _raw(CLICK, user_id="u" * 3_000_000)),
    ("naive time", _raw(CLICK, time="2026-01-01T00:00:00")),
    ("unknown version", _raw(CLICK, schema_version=7)),
    ("empty", b""),
    ("null", b"null"),
    ("truncated", _raw(IMPRESSION)[:40]),
    ("NUL bytes", b"\x00" * 64),
]


@pytest.mark.parametrize(("label", "raw"), HOSTILE, ids=[label for label, _ in HOSTILE])
def test_hostile_bytes_raise_only_event_decode_errors(label: str, raw: bytes) -> None:
    with pytest.raises(EventDecodeError) as caught:
        decode_event(raw)

    assert caught.value.field and caught.value.reason
    assert decode_feedback_fast(raw, "click") is None and decode_feedback_fast(raw, "impression") is None


@pytest.mark.parametrize("error", [RecursionError("maximum recursion depth exceeded"), OverflowError("too big"),
                                   MemoryError(), TypeError("odd")])
def test_an_exception_no_decoder_foresaw_becomes_an_event_decode_error(
    monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    class Exploding:
        def validate_json(self, raw: bytes | str) -> Any:
            raise error

    monkeypatch.setattr(events, "_EVENT_ADAPTER", Exploding())

    with pytest.raises(EventDecodeError) as caught:
        decode_event(_raw(CLICK))

    assert caught.value.field == "<event>"
    assert caught.value.reason.startswith(f"{type(error).__name__}:")
