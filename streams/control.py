"""Control records for the worker: the `<prefix>control` topic and its one record type.

| topic              | key     | value                      | partitions                    |
|--------------------|---------|----------------------------|-------------------------------|
| <prefix>control    | user id | ForgetUser JSON (below)    | settings.partitions (same as  |
|                    |         |                            | requests/impressions/clicks)  |

Keyed by user id with the same murmur2 partitioner and partition count as the feedback
topics, so a control record lands on the user's partition number and the worker handles
it in that partition's context, in the same stream (the feedback agent) as the user's
impressions and clicks. Value (JSON, UTF-8):

    {"type": "forget_user", "schema_version": 1, "user_id": "u42",
     "control_id": "9f0c...", "time": "2026-11-23T09:30:00Z"}

`control_id` identifies one request (for logs); `time` is when it was asked, UTC. Unknown
types, versions or fields are dead-lettered by the worker like any bad record.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError, for_code
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from online.events import EventDecodeError, Identifier, to_utc, unexpected_error, utc_now
from streams.settings import StreamSettings
from streams.topics import TopicLayoutError


class ForgetUser(BaseModel):
    """Ask the workers to delete every learned state of `user_id` (right to be forgotten)."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    type: Literal["forget_user"] = "forget_user"
    schema_version: Literal[1] = 1
    user_id: Identifier
    control_id: Identifier = Field(default_factory=lambda: uuid.uuid4().hex)
    time: AwareDatetime = Field(default_factory=utc_now)

    @field_validator("time")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return to_utc(value)


def control_topic(settings: StreamSettings) -> str:
    """The control topic name, "<prefix>control"."""
    return f"{settings.topic_prefix}control"


def encode_control(record: ForgetUser) -> bytes:
    """Compact JSON bytes of a control record."""
    return record.model_dump_json().encode()


def decode_control(raw: bytes) -> ForgetUser:
    """Parse a control record; EventDecodeError(field, reason) for anything else (also for an
    exception parsing did not foresee: field "<control>", its class and message as reason)."""
    try:
        return ForgetUser.model_validate_json(raw)
    except ValidationError as error:
        detail = error.errors(include_url=False)[0]
        if detail["type"] == "json_invalid":
            raise EventDecodeError("<json>", detail["msg"]) from None
        location = ".".join(str(part) for part in detail["loc"]) or "<control>"
        raise EventDecodeError(f"control.{location}", detail["msg"]) from None
    except Exception as error:  # any failure to parse one record is that record's fault
        raise unexpected_error("<control>", error) from None


def ensure_control_topic(settings: StreamSettings, *, timeout_s: float = 30.0) -> bool:
    """Create the control topic if missing (True when created now); wait for its leaders.

    Raises TopicLayoutError when it exists with a partition count other than
    `settings.partitions` (a control record would then miss the user's partition).
    """
    name = control_topic(settings)
    timeout_ms = int(timeout_s * 1000)
    with KafkaAdminClient(**settings.kafka_client_config(), client_id=f"{settings.app_id}-admin") as admin:
        result = admin.create_topics([NewTopic(name, settings.partitions, settings.replication_factor)],
                                     timeout_ms=timeout_ms, raise_errors=False)
        code: int = result["topics"][0]["error_code"]
        if code not in (0, TopicAlreadyExistsError.errno):
            error = for_code(code)
            raise error(f"creating topic {name}: {error.__name__}")
        created = code == 0
        admin.wait_for_topics([name], timeout_ms=timeout_ms)
        described = admin.describe_topics([name])
    count = len(described[0]["partitions"])
    if count != settings.partitions:
        raise TopicLayoutError(
            f"partitions: {name} has {count} partitions, the settings ask for {settings.partitions}"
        )
    return created


def publish_forget(settings: StreamSettings, user_id: str, *, timeout_s: float = 30.0) -> tuple[int, int]:
    """Publish a ForgetUser for `user_id` (acks=all); returns (partition, offset) of the record."""
    record = ForgetUser(user_id=user_id)
    producer = KafkaProducer(**settings.kafka_client_config(), acks="all", client_id=f"{settings.app_id}-forget")
    try:
        metadata = producer.send(control_topic(settings), key=user_id.encode(),
                                 value=encode_control(record)).get(timeout=timeout_s)
    finally:
        producer.close(timeout=timeout_s)
    return int(metadata.partition), int(metadata.offset)
