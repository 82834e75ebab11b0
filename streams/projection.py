"""One projection for every worker: the PCA from the encoder's width to the bandit's d, agreed
through Kafka.

| topic                 | key                         | value                                    |
|-----------------------|-----------------------------|------------------------------------------|
| <prefix>projection    | "<encoder fingerprint>/d<d>"| u32 header length, JSON header, .npz     |

One partition, kept for ever (delete policy, infinite retention: never compacted, so the first
record of a key stays the first). The header says what the projection was fitted on
({"key", "version", "fitted_on", "fitted_at"}); the .npz is `PcaProjection.to_bytes()`.

A projection saved to a file (`save_projection`, `slatestream projection show --out FILE`) is its
record value with the topic and offset added to the header; `load_projection` reads it back, for
`slatestream evaluate --projection FILE` away from the broker.

`agree_on_projection(settings, key, fit)`: the first record of `key` in the topic is THE
projection. A worker that finds none fits one (`fit()`: on the first items it sees), publishes it
and reads the topic again, adopting the first record of the key, its own or one another worker
published a moment before. Every worker and every restart therefore embeds with the same
projection, and the vectors in the catalog table and the learned state stay comparable.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError, for_code

from encoders.projection import PcaProjection
from streams.settings import StreamSettings


class ProjectionError(RuntimeError):
    """The projection topic holds a record that cannot be read."""


@dataclass(frozen=True)
class PublishedProjection:
    """A projection read from the topic, with the offset of its record and what it was fitted on."""

    key: str
    projection: PcaProjection
    offset: int
    fitted_on: int
    fitted_at: str = ""


def projection_topic(settings: StreamSettings) -> str:
    """The projection topic's name, "<prefix>projection"."""
    return f"{settings.topic_prefix}projection"


def ensure_projection_topic(settings: StreamSettings, *, timeout_s: float = 30.0) -> bool:
    """Create the projection topic if missing (True when created now): one partition, kept for ever."""
    name = projection_topic(settings)
    with KafkaAdminClient(**settings.kafka_client_config(), client_id=f"{settings.app_id}-admin") as admin:
        topic = NewTopic(name, 1, settings.replication_factor,
                         topic_configs={"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"})
        result = admin.create_topics([topic], timeout_ms=int(timeout_s * 1000), raise_errors=False)
        code: int = result["topics"][0]["error_code"]
        if code not in (0, TopicAlreadyExistsError.errno):
            error = for_code(code)
            raise error(f"creating topic {name}: {error.__name__}")
        admin.wait_for_topics([name], timeout_ms=int(timeout_s * 1000))
    return code == 0


def encode_projection(key: str, projection: PcaProjection, fitted_on: int) -> bytes:
    """The record value: u32 header length (little-endian), JSON header, the projection's .npz."""
    header = json.dumps({"key": key, "version": projection.version, "fitted_on": fitted_on,
                         "fitted_at": datetime.now(UTC).isoformat()}).encode()
    return len(header).to_bytes(4, "little") + header + projection.to_bytes()


def decode_projection(value: bytes) -> tuple[dict[str, object], PcaProjection]:
    """(header, projection) of a record value; ProjectionError when it is not one."""
    try:
        length = int.from_bytes(value[:4], "little")
        header = json.loads(value[4 : 4 + length])
        projection = PcaProjection.from_bytes(value[4 + length :])
    except (ValueError, KeyError, OSError, EOFError) as error:
        raise ProjectionError(f"not a projection record: {error}") from error
    if not isinstance(header, dict) or header.get("version") != projection.version:
        raise ProjectionError("a projection record whose header does not match its projection")
    return header, projection


def read_projection(settings: StreamSettings, key: str, *, timeout_s: float = 30.0) -> PublishedProjection | None:
    """The first record of `key` in the projection topic, or None when there is none."""
    topic = projection_topic(settings)
    consumer = KafkaConsumer(**settings.kafka_client_config(), group_id=None, enable_auto_commit=False,
                             client_id=f"{settings.app_id}-projection", fetch_max_wait_ms=100)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        deadline = time.monotonic() + timeout_s
        while consumer.position(tp) < end:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: end offset {end} not reached within {timeout_s:g} s")
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    if record.key == key.encode() and record.value is not None:
                        header, projection = decode_projection(record.value)
                        return PublishedProjection(key, projection, int(record.offset), int(str(header["fitted_on"])),
                                                   str(header.get("fitted_at", "")))
        return None
    finally:
        consumer.close(autocommit=False)


def save_projection(path: Path, found: PublishedProjection, topic: str) -> None:
    """Write `found` (read from `topic`) to a file: its record value, the header holding the
    topic and offset as well (written whole to a temporary file, then renamed)."""
    header = json.dumps({"key": found.key, "version": found.projection.version, "fitted_on": found.fitted_on,
                         "fitted_at": found.fitted_at, "topic": topic, "offset": found.offset}).encode()
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(len(header).to_bytes(4, "little") + header + found.projection.to_bytes())
    partial.replace(path)


def load_projection(path: Path) -> tuple[PublishedProjection, str]:
    """(the projection, the topic it was read from) of a file `save_projection` wrote;
    ProjectionError when it is not one, OSError when it cannot be read."""
    header, projection = decode_projection(path.read_bytes())
    try:
        found = PublishedProjection(str(header["key"]), projection, int(str(header["offset"])),
                                    int(str(header["fitted_on"])), str(header.get("fitted_at", "")))
    except (KeyError, ValueError) as error:
        raise ProjectionError(f"{path}: not a saved projection (its header lacks {error})") from error
    return found, str(header.get("topic", ""))


def publish_projection(settings: StreamSettings, key: str, projection: PcaProjection, fitted_on: int) -> int:
    """Append a projection record for `key` (acks=all); returns its offset."""
    producer = KafkaProducer(**settings.kafka_client_config(), acks="all", client_id=f"{settings.app_id}-projection")
    try:
        sent = producer.send(projection_topic(settings), key=key.encode(),
                             value=encode_projection(key, projection, fitted_on)).get(timeout=30)
    finally:
        producer.close(timeout=30)
    return int(sent.offset)


def agree_on_projection(settings: StreamSettings, key: str,
                        fit: Callable[[], tuple[PcaProjection, int]]) -> PublishedProjection:
    """The projection every worker uses for `key`: the first one published, else `fit()`
    ((projection, items fitted on)) published and read back (see the module doc)."""
    ensure_projection_topic(settings)
    found = read_projection(settings, key)
    if found is not None:
        return found
    projection, fitted_on = fit()
    publish_projection(settings, key, projection, fitted_on)
    agreed = read_projection(settings, key)
    if agreed is None:  # pragma: no cover - the record was acknowledged by all replicas
        raise ProjectionError(f"the projection published for {key} cannot be read back")
    return agreed
