"""List and re-queue dead letters: read the dead-letter topic, filter, publish originals back.

    slatestream dead-letters list --topic clicks --since 2026-11-20T00:00:00Z --limit 20
    slatestream dead-letters requeue --error-type UnknownScenarioError --dry-run
    (the command: slatestream/dead_letters.py)

`read_dead_letters` reads the dead-letter topic from its beginning (or, with `since`, from the
first record stamped at or after it: a letter's `time` is never later than its record's Kafka
timestamp) to its end offsets at the start of the call, decodes every envelope
(`streams.dead_letter.decode_dead_letter`), keeps those a `LetterFilter` accepts and returns
them in rejection-time order, at most `limit` of them (the oldest first). A record of the
topic that is not a v2 envelope is counted and reported, never raised.

`requeue` publishes each letter's original bytes to its source topic and partition with its
key (the UTF-8 of `letter.key`) and a header `slatestream-requeued-from:
<dead-letter topic>/<partition>/<offset>`, waiting for the broker's acknowledgement. It
refuses, and reports, a letter whose original was truncated (`truncated`: its bytes are
not the record any more), whose key was cut (longer than 1,024 characters), or whose source
partition no longer exists. Re-queueing is not idempotent: a letter re-queued twice is
processed twice, so filter on `since` / the dead-letter offsets a previous run printed.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kafka import KafkaConsumer, KafkaProducer

from online.events import EventDecodeError
from streams.control import control_topic
from streams.dead_letter import DeadLetter, decode_dead_letter
from streams.replay import offset_ranges, read_ranges, to_epoch_ms
from streams.settings import StreamSettings
from streams.topics import TopicNames

REQUEUE_HEADER = "slatestream-requeued-from"
"""Kafka header on a re-queued record: "<dead-letter topic>/<partition>/<offset>" (UTF-8)."""
_FAR_FUTURE_MS = 2**62
"""A Kafka timestamp no record has: offsets_for_times finds none, so reading stops at the end."""
_CUT_KEY_MARK = "... [truncated, "
"""What `streams.dead_letter.bounded_text` appends to a key it had to cut."""


@dataclass(frozen=True)
class LetterFilter:
    """Which dead letters to keep; every field None accepts everything.

    Attributes:
        source_topic: the full name of the topic the record was read from.
        error_type: the exception class name, exactly (e.g. "EventDecodeError").
        reason: text that the letter's reason or field contains (case-insensitive).
        since, until: rejection times, since <= time < until (timezone-aware).
    """

    source_topic: str | None = None
    error_type: str | None = None
    reason: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name}: {value} has no timezone")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError(f"since ({self.since.isoformat()}) must be before until ({self.until.isoformat()})")

    def accepts(self, letter: DeadLetter) -> bool:
        """Whether `letter` passes every given condition."""
        if self.source_topic is not None and letter.source_topic != self.source_topic:
            return False
        if self.error_type is not None and letter.error_type != self.error_type:
            return False
        if self.reason is not None:
            needle = self.reason.casefold()
            if needle not in letter.reason.casefold() and needle not in (letter.field or "").casefold():
                return False
        if self.since is not None and letter.time < self.since:
            return False
        return self.until is None or letter.time < self.until


def topic_name(settings: StreamSettings, topic: str) -> str:
    """A full topic name from a short one ("clicks" -> "<prefix>clicks"; also "control"), or
    `topic` itself when it is not one of the short names."""
    names = TopicNames.from_settings(settings)
    short = {"requests": names.requests, "impressions": names.impressions, "clicks": names.clicks,
             "items": names.items, "slates": names.slates, "control": control_topic(settings)}
    return short.get(topic, topic)


@dataclass(frozen=True)
class StoredLetter:
    """A dead letter and where it sits in the dead-letter topic (partition, offset)."""

    partition: int
    offset: int
    letter: DeadLetter

    def sort_key(self) -> tuple[datetime, int, int]:
        return self.letter.time, self.partition, self.offset


@dataclass(frozen=True)
class UnreadableRecord:
    """A record of the dead-letter topic that is not a valid v2 envelope, and why."""

    partition: int
    offset: int
    field: str
    reason: str


@dataclass
class DeadLetterScan:
    """What `read_dead_letters` found: the kept letters (time order), how many records were
    read, how many matched the filter (kept or beyond the limit), and the unreadable ones."""

    topic: str
    letters: list[StoredLetter]
    read: int = 0
    matched: int = 0
    unreadable: list[UnreadableRecord] = field(default_factory=list)


def read_dead_letters(
    settings: StreamSettings,
    letter_filter: LetterFilter | None = None,
    *,
    limit: int | None = None,
    topic: str | None = None,
    stall_timeout_s: float = 30.0,
    consumer_config: dict[str, Any] | None = None,
) -> DeadLetterScan:
    """The dead letters `letter_filter` accepts, oldest first, at most `limit` (None: all,
    held in memory: up to ~100 KB each).

    Args:
        settings: broker, security, topic prefix.
        letter_filter: which letters to keep (default: all).
        limit: the most letters returned (the oldest by rejection time).
        topic: the dead-letter topic (default: the settings' "<prefix>dead-letter").
        stall_timeout_s: streams.replay.ReplayError when no partition progresses this long
            (also when the topic does not exist).
        consumer_config: extra kafka-python KafkaConsumer options.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    letter_filter = letter_filter or LetterFilter()
    name = topic or TopicNames.from_settings(settings).dead_letter
    options: dict[str, Any] = {"client_id": f"{settings.app_id}-dead-letters"}
    options.update(consumer_config or {})
    options.update(group_id=None, enable_auto_commit=False)
    since_ms = None if letter_filter.since is None else to_epoch_ms(letter_filter.since)
    scan = DeadLetterScan(name, [])
    kept: list[tuple[tuple[datetime, int, int], int, StoredLetter]] = []  # a max-heap by negated order
    order = itertools.count()
    consumer = KafkaConsumer(**settings.kafka_client_config(), **options)
    try:
        ranges = offset_ranges(consumer, name, since_ms, _FAR_FUTURE_MS, stall_timeout_s)
        for record in read_ranges(consumer, ranges, stall_timeout_s):
            scan.read += 1
            stored = _decode(record.partition, record.offset, record.value, scan)
            if stored is None or not letter_filter.accepts(stored.letter):
                continue
            scan.matched += 1
            _keep(kept, stored, limit, next(order))
    finally:
        consumer.close(autocommit=False)
    scan.letters = sorted((entry[2] for entry in kept), key=StoredLetter.sort_key)
    return scan


def _decode(partition: int, offset: int, value: bytes | None, scan: DeadLetterScan) -> StoredLetter | None:
    if value is None:
        scan.unreadable.append(UnreadableRecord(partition, offset, "<value>", "a tombstone (no value)"))
        return None
    try:
        return StoredLetter(partition, offset, decode_dead_letter(value))
    except EventDecodeError as error:
        scan.unreadable.append(UnreadableRecord(partition, offset, error.field, error.reason))
        return None


def _keep(kept: list[tuple[Any, int, StoredLetter]], stored: StoredLetter, limit: int | None, tie: int) -> None:
    """Keep the `limit` oldest letters: a heap whose top is the newest kept one."""
    time, partition, offset = stored.sort_key()
    entry = ((-time.timestamp(), -partition, -offset), tie, stored)
    if limit is None or len(kept) < limit:
        heapq.heappush(kept, entry)
    elif entry[0] > kept[0][0]:
        heapq.heapreplace(kept, entry)


@dataclass(frozen=True)
class RequeueOutcome:
    """One letter's fate: `requeued_at` (partition, offset) in its source topic, or `refused` (why)."""

    stored: StoredLetter
    requeued_at: tuple[int, int] | None = None
    refused: str | None = None


def refusal(letter: DeadLetter, partitions: Iterable[int] | None) -> str | None:
    """Why `letter` cannot be re-queued as the record it was, or None when it can.

    `partitions`: the source topic's partition numbers (None: the topic does not exist)."""
    if letter.truncated:
        return f"truncated: the envelope kept {len(letter.original_bytes())} of {letter.original_size} bytes"
    if letter.key is not None and _CUT_KEY_MARK in letter.key:
        return "the key was cut to 1,024 characters"
    if partitions is None:
        return f"the source topic {letter.source_topic} does not exist"
    if letter.partition not in set(partitions):
        return f"the source topic {letter.source_topic} has no partition {letter.partition}"
    return None


def source_partitions(settings: StreamSettings, topics: Iterable[str]) -> dict[str, set[int] | None]:
    """{topic: its partition numbers, or None when it does not exist} (never creates a topic)."""
    consumer = KafkaConsumer(**settings.kafka_client_config(), group_id=None, enable_auto_commit=False,
                             client_id=f"{settings.app_id}-requeue-metadata")
    try:
        return {topic: consumer.partitions_for_topic(topic) for topic in topics}
    finally:
        consumer.close(autocommit=False)


def requeue(
    settings: StreamSettings,
    letters: Sequence[StoredLetter],
    *,
    dead_letter_topic: str | None = None,
    timeout_s: float = 30.0,
    producer_config: dict[str, Any] | None = None,
) -> list[RequeueOutcome]:
    """Publish each letter's original bytes back to its source topic and partition (see the
    module docstring), in order; one outcome per letter. Broker errors raise (kafka-python's)."""
    dlq = dead_letter_topic or TopicNames.from_settings(settings).dead_letter
    options: dict[str, Any] = {"acks": "all", "client_id": f"{settings.app_id}-requeue"}
    options.update(producer_config or {})
    partitions = source_partitions(settings, {stored.letter.source_topic for stored in letters})
    producer = KafkaProducer(**settings.kafka_client_config(), **options)
    outcomes: list[RequeueOutcome] = []
    try:
        for stored in letters:
            letter = stored.letter
            why = refusal(letter, partitions[letter.source_topic])
            if why is not None:
                outcomes.append(RequeueOutcome(stored, refused=why))
                continue
            header = f"{dlq}/{stored.partition}/{stored.offset}".encode()
            future = producer.send(letter.source_topic, value=letter.original_bytes(), partition=letter.partition,
                                   key=None if letter.key is None else letter.key.encode(),
                                   headers=[(REQUEUE_HEADER, header)])
            metadata = future.get(timeout=timeout_s)
            outcomes.append(RequeueOutcome(stored, requeued_at=(metadata.partition, metadata.offset)))
    finally:
        producer.close(timeout=timeout_s)
    return outcomes
