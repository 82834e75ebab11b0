"""The dead-letter envelope (unit tests, no broker): lossless round trip, clear errors."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from online.events import EventDecodeError, decode_event
from streams.dead_letter import (
    DEFAULT_MAX_ORIGINAL_BYTES,
    MAX_ORIGINAL_BYTES,
    DeadLetter,
    DeadLetterSendStats,
    bounded_text,
    decode_dead_letter,
    encode_dead_letter,
    max_envelope_bytes,
    send_dead_letters,
)

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


def _envelope(**changes: object) -> bytes:
    """A valid v2 envelope of b"x" as JSON, with `changes` applied (None deletes a field)."""
    fields: dict[str, object] = {
        "schema_version": 2, "original": "eA==", "original_size": 1,
        "original_sha256": hashlib.sha256(b"x").hexdigest(), "truncated": False, "source_topic": "t",
        "partition": 0, "offset": 0, "reason": "r", "error_type": "E", "time": "2026-01-01T00:00:00Z"}
    fields.update(changes)
    return json.dumps({name: value for name, value in fields.items() if value is not None}).encode()


def test_the_valid_envelope_of_the_bad_envelope_cases_decodes() -> None:
    assert decode_dead_letter(_envelope()).original_bytes() == b"x"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"{not json", "<json>"),
        (_envelope(original="***"), "original"),
        (_envelope(partition=-1), "partition"),
        (_envelope(time="2026-01-01T00:00:00"), "time"),
        (_envelope(time="9999-12-31T23:59:59-14:00"), "time"),
        (_envelope(schema_version=1), "schema_version"),
        (_envelope(schema_version=3), "schema_version"),
        (_envelope(original_sha256="ab"), "original_sha256"),
        (_envelope(original_sha256=None), "original_sha256"),
        (_envelope(reason="r" * 1_001), "reason"),
        (_envelope(original_size=0), "<dead_letter>"),  # more bytes kept than the record had
        (_envelope(original_size=2), "<dead_letter>"),  # dropped bytes, yet not marked truncated
        (_envelope(original_size=2, truncated=True, original_sha256="0" * 64), None),  # a valid truncated one
        (_envelope(original_sha256="0" * 64), "<dead_letter>"),  # whole, but not its digest
    ],
)
def test_bad_envelopes_name_the_field(raw: bytes, field: str | None) -> None:
    if field is None:
        assert decode_dead_letter(raw).truncated
        return
    with pytest.raises(EventDecodeError) as caught:
        decode_dead_letter(raw)

    assert caught.value.field == field


def test_original_is_standard_base64() -> None:
    letter = DeadLetter.from_error(RAW, topic="t", partition=0, offset=0, key=None, error=ValueError("v"), time=T0)

    assert base64.b64decode(letter.original, validate=True) == RAW
    assert b'"original":"' + letter.original.encode() + b'"' in encode_dead_letter(letter)


# --- bounded envelopes ----------------------------------------------------------------------


def test_a_huge_record_keeps_a_bounded_prefix_with_its_full_size_and_digest() -> None:
    raw = np.random.default_rng(7).bytes(3_000_000)

    letter = DeadLetter.from_error(raw, topic="slatestream.clicks", partition=1, offset=9, key=b"u",
                                   error=decode_error(), time=T0)
    encoded = encode_dead_letter(letter)

    assert letter.truncated and letter.original_size == len(raw)
    assert letter.original_bytes() == raw[:DEFAULT_MAX_ORIGINAL_BYTES]
    assert letter.original_sha256 == hashlib.sha256(raw).hexdigest()
    assert len(encoded) <= max_envelope_bytes() < 1_000_000
    assert decode_dead_letter(encoded) == letter


def test_a_small_record_is_kept_whole() -> None:
    letter = DeadLetter.from_error(RAW, topic="t", partition=0, offset=0, key=None, error=ValueError("v"))

    assert not letter.truncated and letter.original_size == len(RAW)
    assert letter.original_sha256 == hashlib.sha256(RAW).hexdigest()


@pytest.mark.parametrize("kept", [0, 10, MAX_ORIGINAL_BYTES])
def test_the_kept_prefix_is_configurable(kept: int) -> None:
    raw = b"z" * (MAX_ORIGINAL_BYTES + 5)

    letter = DeadLetter.from_error(raw, topic="t", partition=0, offset=0, key=None, error=ValueError("v"),
                                   max_original_bytes=kept)

    assert letter.original_bytes() == raw[:kept] and letter.truncated
    assert decode_dead_letter(encode_dead_letter(letter)) == letter


@pytest.mark.parametrize("kept", [-1, MAX_ORIGINAL_BYTES + 1])
def test_a_kept_prefix_out_of_bounds_is_refused(kept: int) -> None:
    with pytest.raises(ValueError, match="max_original_bytes"):
        DeadLetter.from_error(b"x", topic="t", partition=0, offset=0, key=None, error=ValueError("v"),
                              max_original_bytes=kept)


def test_worst_case_texts_still_fit_the_bound_and_round_trip() -> None:
    hostile = "\x00" * 50_000 + "\U0001f600" * 100 + "\ud800"  # control characters escape to 6 bytes each
    error = EventDecodeError(hostile, hostile)

    letter = DeadLetter.from_error(b"\x00" * 2_000_000, topic="t" * 249, partition=0, offset=2**62,
                                   key=b"\xff" * 1_000_000, error=error, max_original_bytes=MAX_ORIGINAL_BYTES)
    encoded = encode_dead_letter(letter)

    assert len(encoded) <= max_envelope_bytes(MAX_ORIGINAL_BYTES) < 1_000_000
    assert letter.reason.endswith(f"[truncated, {len(hostile)} chars]") and len(letter.reason) == 1_000
    assert letter.key is not None and letter.key.startswith("\\xff") and len(letter.key) == 1_024
    assert letter.field is not None and len(letter.field) <= 256
    assert decode_dead_letter(encoded) == letter


@pytest.mark.parametrize(
    ("error", "reason"),
    [(EventDecodeError("f", ""), "EventDecodeError"), (ValueError("  "), "ValueError"),
     (OverflowError("date value out of range"), "date value out of range")],
)
def test_every_error_gives_a_non_empty_reason(error: Exception, reason: str) -> None:
    letter = DeadLetter.from_error(b"x", topic="t", partition=0, offset=0, key=None, error=error)

    assert letter.reason == reason and letter.error_type == type(error).__name__


def test_bounded_text_escapes_lone_surrogates() -> None:
    assert bounded_text("a\ud800b", 100) == "a\\ud800b"
    assert bounded_text("abc", 3) == "abc"
    assert bounded_text("x" * 100, 40) == "x" * 14 + "... [truncated, 100 chars]"


# --- sending with retries -------------------------------------------------------------------


def _letters(n: int) -> list[DeadLetter]:
    return [DeadLetter.from_error(f"bad {i}".encode(), topic="t", partition=0, offset=i, key=f"u{i}",
                                  error=ValueError(f"v{i}"), time=T0) for i in range(n)]


class FakeSend:
    """Records what was sent; fails the first `failures` tries of every value in `failing`."""

    def __init__(self, failing: set[int], failures: int) -> None:
        self.failing, self.failures = failing, failures
        self.tries: dict[int, int] = {}
        self.sent: list[tuple[bytes | None, bytes]] = []

    async def __call__(self, key: bytes | None, value: bytes) -> None:
        offset = decode_dead_letter(value).offset
        self.tries[offset] = self.tries.get(offset, 0) + 1
        if offset in self.failing and self.tries[offset] <= self.failures:
            raise ConnectionError(f"broker unreachable (try {self.tries[offset]})")
        self.sent.append((key, value))


def test_a_failing_send_is_retried_with_backoff_until_it_succeeds() -> None:
    send, sleeps, stats = FakeSend({1}, failures=3), [], DeadLetterSendStats()

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    lost = asyncio.run(send_dead_letters(send, _letters(3), attempts=5, first_backoff_s=0.1, max_backoff_s=0.3,
                                         stats=stats, sleep=sleep))

    assert lost == 0 and sleeps == [0.1, 0.2, 0.3]
    assert [decode_dead_letter(value).offset for _, value in send.sent] == [0, 1, 2]
    assert [key for key, _ in send.sent] == [b"u0", b"u1", b"u2"]
    assert (stats.sent, stats.retries, stats.lost) == (3, 3, 0)


def test_a_send_that_keeps_failing_is_logged_and_counted_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    send, failed, stats = FakeSend({0, 2}, failures=99), [], DeadLetterSendStats()

    async def sleep(seconds: float) -> None:
        return None

    lost = asyncio.run(send_dead_letters(send, _letters(3), attempts=3, stats=stats, sleep=sleep,
                                         on_failure=lambda letter, error: failed.append((letter.offset, error))))

    assert lost == 2 and (stats.sent, stats.lost, stats.retries) == (1, 2, 4)
    assert [decode_dead_letter(value).offset for _, value in send.sent] == [1]
    assert [offset for offset, _ in failed] == [0, 2] and send.tries == {0: 3, 1: 1, 2: 3}
    assert all(isinstance(error, ConnectionError) for _, error in failed)
    lost_lines = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(lost_lines) == 2 and "t[0]@2" in lost_lines[1].getMessage()


def test_a_send_that_hangs_times_out_and_counts_as_lost() -> None:
    async def hang(key: bytes | None, value: bytes) -> None:
        await asyncio.Event().wait()

    async def sleep(seconds: float) -> None:
        return None

    stats = DeadLetterSendStats()
    lost = asyncio.run(send_dead_letters(hang, _letters(1), attempts=2, timeout_s=0.01, stats=stats, sleep=sleep))

    assert lost == 1 and stats.lost == 1


def test_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="attempts"):
        asyncio.run(send_dead_letters(FakeSend(set(), 0), _letters(1), attempts=0))
