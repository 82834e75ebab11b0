"""The dead-letter envelope: a record that could not be processed, with where and why.

A consumer that meets bytes it cannot decode (or an event it cannot apply) publishes a
`DeadLetter` to the dead-letter topic instead of crashing or silently dropping it. The
original value travels base64-encoded so any bytes survive the JSON envelope unchanged;
`original_bytes()` gives them back for replay.

An envelope always fits the broker's default 1 MB message limit: it keeps at most
`max_original_bytes` of the original (64 KiB by default, 512 KiB at most) together with the
original's full size and SHA-256 digest (`truncated` says whether bytes were dropped), and
every text field is bounded (`max_envelope_bytes` gives the bound: 103,838 bytes by default).

    letter = DeadLetter.from_error(raw, topic="slatestream.clicks", partition=2, offset=41,
                                   key=b"user-7", error=error)
    lost = await send_dead_letters(send, [letter])   # retried with backoff, never raises

Design notes and the envelope's fields: docs/events.md.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from online.events import EventDecodeError, to_utc, utc_now

log = logging.getLogger(__name__)

DEAD_LETTER_SCHEMA_VERSION: Literal[2] = 2
DEFAULT_MAX_ORIGINAL_BYTES = 64 * 1024
"""Bytes of the original value an envelope keeps by default (the rest: size and digest only)."""
MAX_ORIGINAL_BYTES = 512 * 1024
"""The most bytes of the original any envelope keeps (its base64 text: 699,052 characters)."""
MAX_REASON_CHARS = 1_000
MAX_FIELD_CHARS = 256
MAX_KEY_CHARS = 1_024
MAX_ERROR_TYPE_CHARS = 128
MAX_TOPIC_CHARS = 249
"""Kafka's own limit on a topic name."""
_JSON_BYTES_PER_CHAR = 6
"""Worst case of a character in the JSON text: a control character is written `\\u0000`."""
_ENVELOPE_OVERHEAD_BYTES = 512
"""Names, punctuation, numbers, digest, flag and time of an envelope: ~330 bytes, rounded up."""


def base64_length(size: int) -> int:
    """Characters of the padded standard base64 text of `size` bytes."""
    return 4 * ((size + 2) // 3)


def max_envelope_bytes(max_original_bytes: int = DEFAULT_MAX_ORIGINAL_BYTES) -> int:
    """An upper bound of the encoded size of any envelope keeping at most `max_original_bytes`
    bytes, in bytes: 103,838 by default, 715,506 at MAX_ORIGINAL_BYTES (both under 1 MB)."""
    texts = MAX_REASON_CHARS + MAX_FIELD_CHARS + MAX_KEY_CHARS + MAX_ERROR_TYPE_CHARS + MAX_TOPIC_CHARS
    return base64_length(max_original_bytes) + _JSON_BYTES_PER_CHAR * texts + _ENVELOPE_OVERHEAD_BYTES


def bounded_text(text: str, limit: int) -> str:
    """`text` as valid UTF-8 (lone surrogates backslash-escaped) of at most `limit` characters;
    a longer one keeps its head and ends with a note of its full length."""
    head = text[: limit + 1].encode("utf-8", errors="backslashreplace").decode("utf-8")
    if len(text) <= limit and len(head) <= limit:
        return head
    note = f"... [truncated, {len(text)} chars]"
    return head[: max(0, limit - len(note))] + note


class DeadLetter(BaseModel):
    """One rejected record.

    Attributes:
        original: the first bytes of the record value (all of them unless `truncated`),
            base64 (standard alphabet, padded).
        original_size: the record value's full size, bytes.
        original_sha256: SHA-256 of the full record value, 64 lower-case hex digits.
        truncated: True when `original` holds only the first bytes of the value.
        source_topic, partition, offset: where the record was read.
        key: the record key as UTF-8 text (undecodable bytes backslash-escaped), or None;
            at most 1,024 characters (a longer one is cut, with a note of its length).
        reason: human-readable cause (for decode errors: pydantic's message), <= 1,000 chars.
        field: the offending field ("<json>", "type", "time", "shown.0.item_id"...) or None.
        error_type: the exception class name, e.g. "EventDecodeError".
        time: when the record was rejected, timezone-aware UTC.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[2] = DEAD_LETTER_SCHEMA_VERSION
    original: str = Field(max_length=base64_length(MAX_ORIGINAL_BYTES))
    original_size: int = Field(ge=0)
    original_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    truncated: bool
    source_topic: str = Field(min_length=1, max_length=MAX_TOPIC_CHARS)
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)
    key: str | None = Field(default=None, max_length=MAX_KEY_CHARS)
    reason: str = Field(min_length=1, max_length=MAX_REASON_CHARS)
    field: str | None = Field(default=None, max_length=MAX_FIELD_CHARS)
    error_type: str = Field(min_length=1, max_length=MAX_ERROR_TYPE_CHARS)
    time: AwareDatetime = Field(default_factory=utc_now)

    @field_validator("original")
    @classmethod
    def _base64(cls, value: str) -> str:
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as error:
            raise ValueError(f"not valid base64: {error}") from None
        return value

    @field_validator("time")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return to_utc(value)

    @model_validator(mode="after")
    def _original_consistent(self) -> DeadLetter:
        kept = self.original_bytes()
        if len(kept) > self.original_size:
            raise ValueError(f"original holds {len(kept)} bytes, more than original_size {self.original_size}")
        if self.truncated != (len(kept) < self.original_size):
            raise ValueError(f"truncated is {self.truncated} but original holds {len(kept)} of "
                             f"{self.original_size} bytes")
        if not self.truncated and hashlib.sha256(kept).hexdigest() != self.original_sha256:
            raise ValueError("original_sha256 is not the SHA-256 of original")
        return self

    def original_bytes(self) -> bytes:
        """The kept bytes of the rejected record value: all of it unless `truncated`."""
        return base64.b64decode(self.original, validate=True)

    @classmethod
    def from_error(
        cls,
        raw: bytes,
        *,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | str | None,
        error: BaseException,
        time: datetime | None = None,
        max_original_bytes: int = DEFAULT_MAX_ORIGINAL_BYTES,
    ) -> DeadLetter:
        """Wrap `raw` (read at topic/partition/offset) rejected with `error`, keeping its first
        `max_original_bytes` bytes (0 to MAX_ORIGINAL_BYTES; ValueError otherwise).

        An EventDecodeError contributes its `field` and `reason`; any other exception its
        message (or class name when the message is empty) with field None. Texts are cut
        to their bounds, so any record and any error give a valid envelope.
        """
        if not 0 <= max_original_bytes <= MAX_ORIGINAL_BYTES:
            raise ValueError(f"max_original_bytes must be within 0..{MAX_ORIGINAL_BYTES}, not {max_original_bytes}")
        name = type(error).__name__
        field: str | None = None
        reason = str(error)
        if isinstance(error, EventDecodeError):
            field, reason = bounded_text(error.field, MAX_FIELD_CHARS), error.reason
        if isinstance(key, bytes):
            key = key.decode("utf-8", errors="backslashreplace")
        kept = raw[:max_original_bytes]
        return cls(
            original=base64.b64encode(kept).decode("ascii"),
            original_size=len(raw),
            original_sha256=hashlib.sha256(raw).hexdigest(),
            truncated=len(kept) < len(raw),
            source_topic=topic,
            partition=partition,
            offset=offset,
            key=None if key is None else bounded_text(key, MAX_KEY_CHARS),
            reason=bounded_text(reason if reason.strip() else name, MAX_REASON_CHARS),
            field=field,
            error_type=bounded_text(name, MAX_ERROR_TYPE_CHARS),
            time=time or utc_now(),
        )


def encode_dead_letter(letter: DeadLetter) -> bytes:
    """Compact JSON bytes of the envelope (UTC ISO-8601 time)."""
    return letter.model_dump_json().encode()


def decode_dead_letter(raw: bytes | str) -> DeadLetter:
    """Parse an envelope; raise EventDecodeError(field, reason) on bad input."""
    try:
        return DeadLetter.model_validate_json(raw)
    except ValidationError as error:
        detail = error.errors(include_url=False)[0]
        field = ".".join(str(part) for part in detail["loc"]) or "<dead_letter>"
        if detail["type"] == "json_invalid":
            field = "<json>"
        raised = EventDecodeError(field, detail["msg"])
    raise raised


SendRecord = Callable[[bytes | None, bytes], Awaitable[object]]
"""`send(key, value)`: publish one record to the dead-letter topic (e.g. a Faust topic's
`lambda key, value: topic.send(key=key, value=value)`)."""


@dataclass
class DeadLetterSendStats:
    """Dead letters handed to `send_dead_letters`, by outcome: sent == letters - lost."""

    sent: int = 0
    retries: int = 0
    lost: int = 0


async def send_dead_letters(
    send: SendRecord,
    letters: Sequence[DeadLetter],
    *,
    attempts: int = 5,
    first_backoff_s: float = 0.1,
    max_backoff_s: float = 2.0,
    timeout_s: float | None = None,
    stats: DeadLetterSendStats | None = None,
    on_failure: Callable[[DeadLetter, Exception], None] | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> int:
    """Send each letter (key: the letter's key as UTF-8, value: `encode_dead_letter`), in order.

    A failing send (any exception, or `timeout_s` seconds without an answer, when given) is
    retried up to `attempts` tries in all, waiting `first_backoff_s`, then twice as long each
    time up to `max_backoff_s` seconds. A letter that still fails is lost: logged with where
    its record was read and why, counted in `stats.lost`, passed to `on_failure(letter,
    last error)`; the other letters are still sent. Returns the number lost; never raises
    (cancellation excepted).
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, not {attempts}")
    stats = stats if stats is not None else DeadLetterSendStats()
    lost = 0
    for letter in letters:
        error = await _send_with_retries(send, letter, attempts, first_backoff_s, max_backoff_s, timeout_s,
                                         stats, sleep)
        if error is None:
            stats.sent += 1
            continue
        lost += 1
        stats.lost += 1
        log.error("dead letter of %s[%d]@%d (%s) lost after %d attempts: %s: %s", letter.source_topic,
                  letter.partition, letter.offset, letter.error_type, attempts, type(error).__name__,
                  bounded_text(str(error), MAX_REASON_CHARS))
        if on_failure is not None:
            on_failure(letter, error)
    return lost


async def _send_with_retries(
    send: SendRecord, letter: DeadLetter, attempts: int, first_backoff_s: float, max_backoff_s: float,
    timeout_s: float | None, stats: DeadLetterSendStats, sleep: Callable[[float], Awaitable[object]],
) -> Exception | None:
    """None once `letter` is sent, else the last attempt's error."""
    key = None if letter.key is None else letter.key.encode()
    value = encode_dead_letter(letter)
    backoff = first_backoff_s
    error: Exception | None = None
    for attempt in range(attempts):
        if attempt:
            stats.retries += 1
            await sleep(backoff)
            backoff = min(2 * backoff, max_backoff_s)
        try:
            await asyncio.wait_for(send(key, value), timeout_s)
        except Exception as failure:  # a send's errors are the broker's, retried then counted
            log.warning("dead letter of %s[%d]@%d: send attempt %d of %d failed: %s", letter.source_topic,
                        letter.partition, letter.offset, attempt + 1, attempts, type(failure).__name__)
            error = failure
            continue
        return None
    return error
