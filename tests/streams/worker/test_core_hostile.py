"""WorkerCore dead-letters whatever decoding or validating one record raises, and keeps counting."""

from __future__ import annotations

import json
from typing import Any

import pytest

import streams.worker.core as worker_core
from online.events import EventDecodeError, decode_event
from streams.control import ForgetUser, decode_control, encode_control
from streams.worker.core import Record

from .test_core import T0, core, feedback, items, rank_all, record

EXTREME = "9999-12-31T23:59:59-14:00"


def _with_time(raw: bytes, time: str) -> bytes:
    return json.dumps({**json.loads(raw), "time": time}).encode()


def test_times_utc_cannot_hold_are_dead_lettered_on_every_path() -> None:
    worker = core({})
    good_items = items()
    _, dead = worker.add_items([*good_items, record("items", 6, _with_time(good_items[0].value, EXTREME))])
    assert [(d.offset, d.field) for d in dead] == [(6, "item.time")]
    rank_all(worker, 2)
    request = json.dumps({"type": "rank_request", "request_id": "rx", "user_id": "u1", "time": EXTREME}).encode()
    slates, dead = worker.rank([record("requests", 9, request)])
    assert not slates and [d.field for d in dead] == ["rank_request.time"]
    impressions, clicks = feedback(2)
    forget = encode_control(ForgetUser(user_id="u1", time=T0))
    dead = worker.learn([
        impressions[0], clicks[0],
        record("impressions", 7, _with_time(impressions[1].value, EXTREME)),
        record("clicks", 8, _with_time(clicks[1].value, "0001-01-01T00:00:00+05:00")),
        record("control", 0, _with_time(forget, EXTREME)),
    ])

    assert [(d.offset, d.field) for d in dead] == [(7, "impression.time"), (8, "click.time"), (0, "control.time")]
    assert all("out of range once converted to UTC" in d.reason for d in dead)
    assert worker.counts.learned == 2 and worker.counts.balanced()


def _exploding(real: Any, error: Exception) -> Any:
    """`real`, except that it raises `error` for values containing b"boom"."""
    def decode(raw: bytes, *args: Any) -> Any:
        if b"boom" in raw:
            raise error
        return real(raw, *args)
    return decode


def _exploding_many(error: Exception) -> Any:
    """A batch decoder that raises `error` for a batch with a value containing b"boom" (else
    vouches for none: pydantic decides each)."""
    def decode(values: list[bytes], kinds: list[str]) -> list[None]:
        if any(b"boom" in raw for raw in values):
            raise error
        return [None] * len(values)
    return decode


@pytest.mark.parametrize("error", [OverflowError("date value out of range"), RecursionError("too deep"),
                                   MemoryError("no room"), KeyError("odd")])
def test_any_exception_a_decoder_raises_is_dead_lettered_with_its_class_and_message(
    monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    monkeypatch.setattr(worker_core, "decode_event", _exploding(decode_event, error))
    monkeypatch.setattr(worker_core, "decode_control", _exploding(decode_control, error))
    monkeypatch.setattr(worker_core, "decode_feedback_many", _exploding_many(error))
    worker = core({})
    bad = b'{"boom": 1}'
    _, dead_items = worker.add_items([*items(), record("items", 6, bad)])
    rank_all(worker, 1)
    _, dead_requests = worker.rank([record("requests", 5, bad)])
    impressions, clicks = feedback(1)
    dead_feedback = worker.learn([*impressions, *clicks, record("impressions", 3, bad), record("clicks", 4, bad),
                                  Record("control", "t.control", 0, 9, b"u1", bad)])

    dead = [*dead_items, *dead_requests, *dead_feedback]
    assert [d.offset for d in dead] == [6, 5, 3, 4, 9]
    assert all(type(error).__name__ in f"{d.error_type} {d.reason}" and d.reason for d in dead)
    assert worker.counts.learned == 2 and worker.counts.dead_lettered == 5 and worker.counts.balanced()


@pytest.mark.parametrize("time", [EXTREME, "0001-01-01T00:00:00+05:00"])
def test_decode_control_names_a_time_utc_cannot_hold(time: str) -> None:
    raw = json.dumps({"type": "forget_user", "user_id": "u", "time": time}).encode()

    with pytest.raises(EventDecodeError) as caught:
        decode_control(raw)

    assert caught.value.field == "control.time" and "out of range" in caught.value.reason


def test_decode_control_turns_an_unforeseen_exception_into_an_event_decode_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def explode(raw: bytes) -> ForgetUser:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(ForgetUser, "model_validate_json", explode)

    with pytest.raises(EventDecodeError) as caught:
        decode_control(encode_control(ForgetUser(user_id="u", time=T0)))

    assert caught.value.field == "<control>" and caught.value.reason.startswith("RecursionError:")
