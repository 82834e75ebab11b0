"""The dead-letter envelope: a record that could not be processed, with where and why.

A consumer that meets bytes it cannot decode (or an event it cannot apply) publishes a
`DeadLetter` to the dead-letter topic instead of crashing or silently dropping it. The
original value travels base64-encoded so any bytes survive the JSON envelope unchanged;
`original_bytes()` gives them back for replay.

    letter = DeadLetter.from_error(raw, topic="slatestream.clicks", partition=2, offset=41,
                                   key=b"user-7", error=error)
    producer.send(names.dead_letter, key=raw_key, value=encode_dead_letter(letter))
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from online.events import EventDecodeError, utc_now

DEAD_LETTER_SCHEMA_VERSION: Literal[1] = 1


class DeadLetter(BaseModel):
    """One rejected record.

    Attributes:
        original: the record value, base64 (standard alphabet, padded).
        source_topic, partition, offset: where the record was read.
        key: the record key as UTF-8 text (undecodable bytes backslash-escaped), or None.
        reason: human-readable cause (for decode errors: pydantic's message).
        field: the offending field ("<json>", "type", "time", "shown.0.item_id"...) or None.
        error_type: the exception class name, e.g. "EventDecodeError".
        time: when the record was rejected, timezone-aware UTC.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = DEAD_LETTER_SCHEMA_VERSION
    original: str
    source_topic: str = Field(min_length=1, max_length=249)
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)
    key: str | None = None
    reason: str = Field(min_length=1)
    field: str | None = None
    error_type: str = Field(min_length=1)
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
        return value.astimezone(UTC)

    def original_bytes(self) -> bytes:
        """The rejected record value, byte for byte."""
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
    ) -> DeadLetter:
        """Wrap `raw` (read at topic/partition/offset) rejected with `error`.

        An EventDecodeError contributes its `field` and `reason`; any other exception its
        message (or class name when the message is empty) with field None.
        """
        if isinstance(error, EventDecodeError):
            field, reason = error.field, error.reason
        else:
            field, reason = None, str(error) or type(error).__name__
        if isinstance(key, bytes):
            key = key.decode("utf-8", errors="backslashreplace")
        return cls(
            original=base64.b64encode(raw).decode("ascii"),
            source_topic=topic,
            partition=partition,
            offset=offset,
            key=key,
            reason=reason,
            field=field,
            error_type=type(error).__name__,
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
