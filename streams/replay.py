"""Replay a time range of the Kafka topics into one event file for offline evaluation.

    slatestream replay --since 2026-11-20T00:00:00Z --until 2026-11-21T00:00:00Z --out day.jsonl.gz
    (the command: slatestream/replay.py; the library: `replay(settings, since, until, out)`)
    slatestream evaluate --data events:day.jsonl.gz --policies linear_ts,uniform_random --out reports/day

Which records: the range is half-open, `since <= timestamp < until`, on each record's
**Kafka timestamp** (milliseconds, `CreateTime`: set by the producer when it sends, unless
the producer passed `timestamp_ms` or the topic uses `LogAppendTime`). The event's own
`time` field is not used to select records: `SlatestreamClient.publish` lets kafka-python
stamp the send time, so an event published late (a backfill) is replayed with the range
it was *sent* in. Per partition, `offsets_for_times(since)` gives the first offset to read
and `offsets_for_times(until)` the first one not to read (the end offset, snapshot at the
start, when none is at/after until); records in between whose timestamp falls outside the
range (out-of-order producer clocks) are skipped and counted. Kafka's lookup assumes
timestamps grow with offsets: a record stamped before `until` but written after the first
record stamped at/after `until` is not read.

Order of the file: first the catalog — the latest version of every item with a timestamp
before `until` (the items topic is compacted, so it is read from its beginning; a tombstone
deletes the item), sorted by item id — then every other event ordered by
`(event time, topic rank, partition, offset)` with the rank requests < slates <
impressions < clicks, so a request precedes its slate, impression and clicks even when
they share a timestamp (`order_records`, pure). Records that do not decode with
`online.events.decode_event`, or decode to an event of another topic, are counted and
reported, never written. Reads use `isolation_level=read_committed` (no slate of an aborted
worker transaction). The events are held in memory to be sorted (about 1 KB each).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from online.datasets import AnyEvent, write_events
from online.events import (
    Click,
    EventDecodeError,
    Impression,
    Item,
    RankRequest,
    Slate,
    SlateError,
    decode_event,
    decode_slate_answer,
)
from streams.settings import StreamSettings
from streams.topics import TopicNames

REPLAY_TOPICS: tuple[str, ...] = ("requests", "impressions", "clicks", "slates", "items")
"""Topics (TopicNames attribute names) `replay` can read; all by default."""

TOPIC_RANK: dict[str, int] = {"requests": 0, "slates": 1, "impressions": 2, "clicks": 3}
"""Tie-break between events with equal event times: a request before its slate, impression, clicks."""

TOPIC_EVENT: dict[str, type[AnyEvent]] = {
    "requests": RankRequest,
    "slates": Slate,
    "impressions": Impression,
    "clicks": Click,
    "items": Item,
}


class ReplayError(RuntimeError):
    """The replay could not read what it was asked to (missing topic, stalled partition)."""


@dataclass(frozen=True)
class ReplayRecord:
    """A decoded event and where it was read. topic: the TopicNames attribute ("clicks")."""

    topic: str
    partition: int
    offset: int
    event: AnyEvent


def order_key(record: ReplayRecord) -> tuple[datetime, int, int, int]:
    """(event time, topic rank, partition, offset): the replay order of a non-item record."""
    try:
        rank = TOPIC_RANK[record.topic]
    except KeyError:
        raise ValueError(f"topic: {record.topic!r} is not ordered; known: {sorted(TOPIC_RANK)}") from None
    return (record.event.time, rank, record.partition, record.offset)


def order_records(records: Iterable[ReplayRecord]) -> list[ReplayRecord]:
    """Records of several partitions and topics merged into replay order (see `order_key`).

    Pure: the result depends only on the records, not on the order they are given in.
    Raises ValueError for an items record (items are written first, see `latest_items`).
    """
    return sorted(records, key=order_key)


@dataclass(frozen=True)
class ItemVersion:
    """One record of the items topic: an Item, or a tombstone (item None) for `item_id`.

    timestamp_ms: the record's Kafka timestamp, ms since the epoch.
    """

    item_id: str
    partition: int
    offset: int
    timestamp_ms: int
    item: Item | None


def latest_items(versions: Iterable[ItemVersion]) -> list[Item]:
    """The current catalog: per item id, its latest version, sorted by item id.

    Within a partition the highest offset is the latest (log order is the truth there);
    across partitions (an item re-keyed) the higher Kafka timestamp wins, then the higher
    partition. Items whose latest version is a tombstone are left out. Pure.
    """
    per_partition: dict[tuple[str, int], ItemVersion] = {}
    for version in versions:
        slot = (version.item_id, version.partition)
        known = per_partition.get(slot)
        if known is None or version.offset > known.offset:
            per_partition[slot] = version
    latest: dict[str, ItemVersion] = {}
    for version in per_partition.values():
        known = latest.get(version.item_id)
        if known is None or (version.timestamp_ms, version.partition) > (known.timestamp_ms, known.partition):
            latest[version.item_id] = version
    items = (latest[item_id].item for item_id in sorted(latest))
    return [item for item in items if item is not None]


def decode_record(topic: str, value: bytes | None) -> AnyEvent:
    """Decode the value of a record read from `topic` (TopicNames attribute name).

    Raises EventDecodeError for a null value, bytes `decode_event` rejects, or an event of
    another topic's type (field "type").
    """
    if value is None:
        raise EventDecodeError("<value>", "null record value (tombstone) outside the items topic")
    event = decode_event(value)
    expected = TOPIC_EVENT[topic]
    if not isinstance(event, expected):
        raise EventDecodeError("type", f"{event.type!r} on the {topic} topic, which carries {expected.__name__}")
    return event


def _is_slate_error(value: bytes | None) -> bool:
    """Whether a slates-topic value is a SlateError (the answer to a request that was not served)."""
    if value is None or b'"slate_error"' not in value:
        return False
    try:
        return isinstance(decode_slate_answer(value), SlateError)
    except EventDecodeError:
        return False


def parse_time(text: str, name: str = "time") -> datetime:
    """An ISO-8601 instant with a timezone ("2026-11-20T00:00:00Z", "...+01:00") as UTC."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{name}: {text!r} is not ISO-8601 (e.g. 2026-11-20T00:00:00Z)") from None
    if value.tzinfo is None:
        raise ValueError(f"{name}: {text!r} has no timezone; add Z or an offset such as +00:00")
    return value.astimezone(UTC)


def to_epoch_ms(value: datetime) -> int:
    """Kafka timestamp bound for an instant: the first whole millisecond at or after it."""
    return math.ceil(value.timestamp() * 1000)


@dataclass
class TopicCounts:
    """Records of one topic. read: fetched in the offset range; out_of_range: of those, with a
    timestamp outside [since, until); errors: slates topic only, SlateErrors (requests the worker
    answered with a reason, left out); undecodable: in range but rejected; written: in the file
    (items: distinct current items); tombstones / superseded: items only."""

    read: int = 0
    out_of_range: int = 0
    errors: int = 0
    undecodable: int = 0
    written: int = 0
    tombstones: int = 0
    superseded: int = 0


@dataclass(frozen=True)
class Undecodable:
    """A record left out of the file, and why."""

    topic: str
    partition: int
    offset: int
    field: str
    reason: str


@dataclass(frozen=True)
class ReplayResult:
    """What `replay` wrote: the path, the event count, counts per topic, and the first
    `max_reported` undecodable records (counts hold them all)."""

    path: Path
    written: int
    counts: dict[str, TopicCounts]
    undecodable: tuple[Undecodable, ...] = field(default=())


def read_ranges(
    consumer: KafkaConsumer, ranges: dict[TopicPartition, tuple[int, int]], stall_timeout_s: float
) -> Iterator[ConsumerRecord]:
    """Every record with start <= offset < stop of each partition, per partition in offset order."""
    remaining = {tp for tp, (start, stop) in ranges.items() if start < stop}
    if not remaining:
        return
    consumer.assign(sorted(remaining))
    for tp in remaining:
        consumer.seek(tp, ranges[tp][0])
    last_progress = time.monotonic()
    while remaining:
        batches = consumer.poll(timeout_ms=200)
        for tp, records in batches.items():
            stop = ranges[tp][1]
            for record in records:
                if record.offset >= stop:
                    break
                yield record
        done = {tp for tp in remaining if consumer.position(tp) >= ranges[tp][1]}
        if done:
            consumer.pause(*done)
            remaining -= done
        if batches or done:
            last_progress = time.monotonic()
        elif time.monotonic() - last_progress > stall_timeout_s:
            stalled = {f"{tp.topic}[{tp.partition}]": (consumer.position(tp), ranges[tp][1]) for tp in remaining}
            raise ReplayError(f"no progress for {stall_timeout_s:g} s; (position, stop) of stalled partitions: "
                              f"{stalled}")


def offset_ranges(
    consumer: KafkaConsumer, topic: str, since_ms: int | None, until_ms: int, timeout_s: float
) -> dict[TopicPartition, tuple[int, int]]:
    """{partition: (first offset to read, first offset not to read)} of `topic`."""
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        raise ReplayError(f"topics: {topic} does not exist (or has no partitions)")
    tps = [TopicPartition(topic, number) for number in sorted(partitions)]
    timeout_ms = int(timeout_s * 1000)
    begins = consumer.beginning_offsets(tps, timeout_ms=timeout_ms)
    ends = consumer.end_offsets(tps, timeout_ms=timeout_ms)
    stops = consumer.offsets_for_times(dict.fromkeys(tps, until_ms), timeout_ms=timeout_ms)
    starts = (
        consumer.offsets_for_times(dict.fromkeys(tps, since_ms), timeout_ms=timeout_ms)
        if since_ms is not None
        else {tp: None for tp in tps}
    )
    ranges: dict[TopicPartition, tuple[int, int]] = {}
    for tp in tps:
        found_stop, found_start = stops[tp], starts[tp]
        stop = ends[tp] if found_stop is None else min(found_stop.offset, ends[tp])
        if since_ms is None:
            start = begins[tp]
        else:
            start = ends[tp] if found_start is None else max(found_start.offset, begins[tp])
        ranges[tp] = (start, stop)
    return ranges


def _check_range(since: datetime, until: datetime, topics: Sequence[str]) -> list[str]:
    """The topics to read, in REPLAY_TOPICS order; ValueError for a bad range or topic."""
    if since.tzinfo is None or until.tzinfo is None:
        raise ValueError("since/until: must be timezone-aware")
    if not since < until:
        raise ValueError(f"since: {since.isoformat()} must be before until {until.isoformat()}")
    if since.timestamp() < 0:
        raise ValueError("since: Kafka timestamps start at 1970-01-01T00:00:00Z")
    unknown = [topic for topic in topics if topic not in REPLAY_TOPICS]
    if unknown or not topics:
        raise ValueError(f"topics: {unknown or 'none given'}; choose among {list(REPLAY_TOPICS)}")
    return [topic for topic in REPLAY_TOPICS if topic in topics]


@dataclass
class _Collected:
    """What the read kept: events to order, item versions, counts, the first undecodable records."""

    counts: dict[str, TopicCounts]
    max_reported: int
    records: list[ReplayRecord] = field(default_factory=list)
    versions: list[ItemVersion] = field(default_factory=list)
    bad: list[Undecodable] = field(default_factory=list)

    def add(self, topic: str, record: ConsumerRecord, since_ms: int, until_ms: int) -> None:
        """Keep one record read from `topic` (TopicNames attribute), or count why not."""
        tally = self.counts[topic]
        tally.read += 1
        if record.timestamp >= until_ms or (topic != "items" and record.timestamp < since_ms):
            tally.out_of_range += 1
            return
        if topic == "items" and record.value is None and record.key is not None:
            tally.tombstones += 1
            item_id = record.key.decode("utf-8", errors="backslashreplace")
            self.versions.append(ItemVersion(item_id, record.partition, record.offset, record.timestamp, None))
            return
        if topic == "slates" and _is_slate_error(record.value):
            tally.errors += 1  # a request the worker answered with its reason: no slate to evaluate
            return
        try:
            event = decode_record(topic, record.value)
        except EventDecodeError as error:
            tally.undecodable += 1
            if len(self.bad) < self.max_reported:
                self.bad.append(Undecodable(topic, record.partition, record.offset, error.field, error.reason))
            return
        if isinstance(event, Item):
            self.versions.append(ItemVersion(event.item_id, record.partition, record.offset, record.timestamp, event))
        else:
            self.records.append(ReplayRecord(topic, record.partition, record.offset, event))


def replay(
    settings: StreamSettings,
    since: datetime,
    until: datetime,
    out: str | Path,
    topics: Sequence[str] = REPLAY_TOPICS,
    *,
    stall_timeout_s: float = 30.0,
    max_reported: int = 20,
    consumer_config: dict[str, Any] | None = None,
) -> ReplayResult:
    """Write the events of [since, until) (Kafka timestamps) to `out` in replay order.

    Args:
        settings: broker, security and topic prefix.
        since, until: timezone-aware instants, since < until.
        out: the JSON-lines file (".gz" compressed), replaced atomically.
        topics: TopicNames attribute names among REPLAY_TOPICS.
        stall_timeout_s: raise ReplayError when no partition progresses for this long.
        max_reported: undecodable records kept in the result (all are counted).
        consumer_config: extra kafka-python KafkaConsumer options.
    """
    chosen = _check_range(since, until, topics)
    since_ms, until_ms = to_epoch_ms(since), to_epoch_ms(until)
    names = TopicNames.from_settings(settings)
    by_name = {getattr(names, topic): topic for topic in chosen}
    kept = _Collected({topic: TopicCounts() for topic in chosen}, max_reported)
    options: dict[str, Any] = {"client_id": f"{settings.app_id}-replay", "isolation_level": "read_committed"}
    options.update(consumer_config or {})
    options.update(group_id=None, enable_auto_commit=False)
    consumer = KafkaConsumer(**settings.kafka_client_config(), **options)
    try:
        ranges: dict[TopicPartition, tuple[int, int]] = {}
        for name, topic in by_name.items():
            ranges.update(
                offset_ranges(consumer, name, None if topic == "items" else since_ms, until_ms, stall_timeout_s)
            )
        for record in read_ranges(consumer, ranges, stall_timeout_s):
            kept.add(by_name[record.topic], record, since_ms, until_ms)
    finally:
        consumer.close(autocommit=False)
    counts = kept.counts
    items = latest_items(kept.versions) if "items" in counts else []
    ordered = order_records(kept.records)
    if "items" in counts:
        counts["items"].written = len(items)
        counts["items"].superseded = len(kept.versions) - counts["items"].tombstones - len(items)
    for record in ordered:
        counts[record.topic].written += 1
    path = Path(out)
    written = _write_atomically(path, [*items, *(record.event for record in ordered)])
    return ReplayResult(path, written, counts, tuple(kept.bad))


def _write_atomically(path: Path, events: Iterable[AnyEvent]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")  # keeps ".gz" last
    try:
        count = write_events(partial, events)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return count


def format_counts(result: ReplayResult) -> list[str]:
    """Human-readable lines: one per topic, then the undecodable records reported."""
    lines = []
    for topic, tally in result.counts.items():
        line = (
            f"{topic}: {tally.written} written, {tally.read} read, {tally.out_of_range} out of range, "
            f"{tally.undecodable} undecodable"
        )
        if tally.errors:
            line += f", {tally.errors} slate errors (requests not served) left out"
        if topic == "items":
            line += f", {tally.superseded} superseded, {tally.tombstones} tombstones"
        lines.append(line)
    lines.append(f"total: {result.written} events -> {result.path}")
    lines.extend(
        f"undecodable {bad.topic}[{bad.partition}]@{bad.offset}: {bad.field}: {bad.reason}"
        for bad in result.undecodable
    )
    return lines
