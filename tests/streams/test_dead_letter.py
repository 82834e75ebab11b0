"""The dead-letter envelope (unit tests, no broker): lossless round trip, clear errors."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import pytest

from online.events import EventDecodeError, decode_event
from streams.dead_letter import DeadLetter, decode_dead_letter, encode_dead_letter

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)
RAW = b'{"type":"click","user_id":"u1"}\xff\x00 not utf-8'


def decode_error() -> EventDecodeError:
    with pytest.raises(EventDecodeError) as caught:
        decode_event(b'{"type":"click","event_id":"e","request_id":"r","user_id":"u","item_id":"i","reward":-1}')
    return caught.value


def test_round_trip_keeps_every_field_and_the_original_bytes() -> None:
    letter = DeadLetter.from_error(RAW, topic="slatestream.clicks", partition=3, offset=41,
                                   key=b"user-7", error=decode_error(), time=T0)

    back = decode_dead_letter(encode_dead_letter(letter))

    assert back == letter
    assert back.original_bytes() == RAW
    assert (back.source_topic, back.partition, back.offset, back.key) == ("slatestream.clicks", 3, 41, "user-7")
    assert (back.field, back.error_type, back.time) == ("click.reward", "EventDecodeError", T0)
    assert "greater than or equal to 0" in back.reason


def test_other_errors_keep_their_message_and_no_field() -> None:
    letter = DeadLetter.from_error(b"x", topic="t", partition=0, offset=0, key=None,
                                   error=KeyError("unknown item 'zz'"), time=T0)

    assert (letter.field, letter.error_type, letter.key) == (None, "KeyError", None)
    assert "unknown item" in letter.reason


def test_non_utf8_key_is_escaped_and_time_normalised_to_utc() -> None:
    local = datetime(2026, 1, 1, 14, tzinfo=timezone(timedelta(hours=2)))
    letter = DeadLetter.from_error(b"", topic="t", partition=0, offset=0, key=b"u\xff",
                                   error=ValueError("boom"), time=local)

    assert letter.key == "u\\xff"
    assert letter.time == T0 and letter.time.utcoffset() == timedelta(0)
    assert letter.original_bytes() == b""


def test_default_time_is_now_in_utc() -> None:
    before = datetime.now(UTC)
    letter = DeadLetter.from_error(b"x", topic="t", partition=0, offset=0, key="k", error=ValueError("v"))

    assert letter.time.tzinfo is not None and before <= letter.time <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"{not json", "<json>"),
        (b'{"original":"***","source_topic":"t","partition":0,"offset":0,"reason":"r","error_type":"E",'
         b'"time":"2026-01-01T00:00:00Z"}', "original"),
        (b'{"original":"","source_topic":"t","partition":-1,"offset":0,"reason":"r","error_type":"E",'
         b'"time":"2026-01-01T00:00:00Z"}', "partition"),
        (b'{"original":"","source_topic":"t","partition":0,"offset":0,"reason":"r","error_type":"E",'
         b'"time":"2026-01-01T00:00:00"}', "time"),
        (b'{"original":"","source_topic":"t","partition":0,"offset":0,"reason":"r","error_type":"E",'
         b'"time":"2026-01-01T00:00:00Z","schema_version":2}', "schema_version"),
    ],
)
def test_bad_envelopes_name_the_field(raw: bytes, field: str) -> None:
    with pytest.raises(EventDecodeError) as caught:
        decode_dead_letter(raw)

    assert caught.value.field == field


def test_original_is_standard_base64() -> None:
    letter = DeadLetter.from_error(RAW, topic="t", partition=0, offset=0, key=None, error=ValueError("v"), time=T0)

    assert base64.b64decode(letter.original, validate=True) == RAW
    assert b'"original":"' + letter.original.encode() + b'"' in encode_dead_letter(letter)
