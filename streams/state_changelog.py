"""Read the worker's learned state back from Kafka: the state table's changelog topic.

Faust writes every state table change to "<app id>-state-changelog" (compacted; a
delete is a tombstone, value None), keyed like the table ("linear_ts/user/u1",
"linear_ts/global/3", "requests/u9") in the partition of the event that wrote it. The
latest record per key is the state a worker recovers, so reading it checks what
survives a crash or a rebalance without touching any worker's local store.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from kafka import KafkaConsumer, TopicPartition

from streams.settings import StreamSettings
from streams.topics import TopicNames
from streams.worker.table_store import AppliedOffsets, unwrap


def worker_app_id(settings: StreamSettings) -> str:
    """The Faust app id (and consumer group) of the workers for these settings."""
    return f"{settings.app_id}-{settings.topic_prefix}".rstrip(".-")


def state_changelog_topic(settings: StreamSettings) -> str:
    """Name of the state table's changelog topic."""
    return f"{worker_app_id(settings)}-state-changelog"


@dataclass(frozen=True)
class ChangelogEntry:
    """The latest changelog record of one key: partition, offset, value (None: tombstone)."""

    partition: int
    offset: int
    value: bytes | None

    def unwrapped(self) -> tuple[AppliedOffsets, bytes]:
        """(applied offsets, state blob); ValueError for a tombstone."""
        if self.value is None:
            raise ValueError(f"value: the key was deleted (tombstone at offset {self.offset})")
        return unwrap(self.value)


def read_changelog(settings: StreamSettings, topic: str | None = None, *,
                   timeout_s: float = 30.0) -> dict[bytes, ChangelogEntry]:
    """Latest record per key of the changelog, read from the beginning to the current end.

    Raises TimeoutError when the end offsets are not reached within timeout_s.
    """
    topic = topic or state_changelog_topic(settings)
    consumer = KafkaConsumer(**settings.kafka_client_config(), group_id=None, enable_auto_commit=False,
                             fetch_max_wait_ms=100)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not assigned:
            return {}
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        ends = consumer.end_offsets(assigned)
        latest: dict[bytes, ChangelogEntry] = {}
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: end offsets {ends} not reached within {timeout_s:g} s")
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    if record.key is not None:
                        latest[bytes(record.key)] = ChangelogEntry(record.partition, record.offset, record.value)
        return latest
    finally:
        consumer.close(autocommit=False)


def latest_of_keys(settings: StreamSettings, wanted: Mapping[int, Collection[bytes]], *, first_window: int = 256,
                   timeout_s: float = 30.0) -> dict[bytes, ChangelogEntry]:
    """The latest changelog record of each key in `wanted` ({partition: keys}), reading each
    partition backwards from its end in windows (the first `first_window` records, then four
    times more each time) until every key of it is found or the partition's beginning is read:
    a key rewritten at every flush (a population state) is found in the tail, without reading
    a compacted partition whole. A key never written (or compacted away) is absent.

    Raises TimeoutError when the reads do not finish within timeout_s.
    """
    topic = state_changelog_topic(settings)
    consumer = KafkaConsumer(**settings.kafka_client_config(), group_id=None, enable_auto_commit=False,
                             fetch_max_wait_ms=100)
    deadline = time.monotonic() + timeout_s
    found: dict[bytes, ChangelogEntry] = {}
    try:
        existing = consumer.partitions_for_topic(topic) or set()
        for partition, keys in sorted(wanted.items()):
            if partition in existing and keys:
                found.update(_latest_in_partition(consumer, TopicPartition(topic, partition), set(keys),
                                                  first_window, deadline))
        return found
    finally:
        consumer.close(autocommit=False)


def _latest_in_partition(consumer: KafkaConsumer, tp: TopicPartition, keys: set[bytes], first_window: int,
                         deadline: float) -> dict[bytes, ChangelogEntry]:
    """`latest_of_keys` for one partition: windows [start, stop) read back from the end."""
    consumer.assign([tp])
    beginning, end = int(consumer.beginning_offsets([tp])[tp]), int(consumer.end_offsets([tp])[tp])
    found: dict[bytes, ChangelogEntry] = {}
    stop, window = end, max(1, first_window)
    while stop > beginning and not keys <= found.keys():
        start = max(beginning, stop - window)
        for entry in _read_range(consumer, tp, start, stop, keys, deadline):
            if entry[0] not in found or found[entry[0]].offset < entry[1].offset:
                found[entry[0]] = entry[1]
        stop, window = start, window * 4
    return found


def _read_range(consumer: KafkaConsumer, tp: TopicPartition, start: int, stop: int, keys: set[bytes],
                deadline: float) -> list[tuple[bytes, ChangelogEntry]]:
    """The records of `keys` at offsets [start, stop) of an assigned partition (a compacted
    partition may have none at some offsets: reading stops at the first at or past `stop`)."""
    consumer.seek(tp, start)
    entries: list[tuple[bytes, ChangelogEntry]] = []
    while consumer.position(tp) < stop:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{tp.topic}[{tp.partition}]: offsets {start}-{stop} not read in time")
        for records in consumer.poll(timeout_ms=200).values():
            for record in records:
                if record.offset < stop and record.key is not None and bytes(record.key) in keys:
                    entries.append((bytes(record.key), ChangelogEntry(record.partition, record.offset, record.value)))
    return entries


def live_values(entries: dict[bytes, ChangelogEntry], prefix: bytes = b"") -> dict[str, bytes]:
    """{key: state blob} of the keys starting with prefix that are not deleted."""
    return {key.decode(): entry.unwrapped()[1] for key, entry in entries.items()
            if key.startswith(prefix) and entry.value is not None}


def wait_for_tombstone(settings: StreamSettings, key: bytes, partition: int, *, after_offset: int = -1,
                       timeout_s: float = 30.0) -> int:
    """Offset of the first tombstone of `key` in the changelog partition after `after_offset`.

    TimeoutError when none appears within timeout_s.
    """
    topic = state_changelog_topic(settings)
    consumer = KafkaConsumer(**settings.kafka_client_config(), group_id=None, enable_auto_commit=False,
                             fetch_max_wait_ms=100)
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, after_offset + 1)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    if record.key == key and record.value is None:
                        return int(record.offset)
        raise TimeoutError(f"no tombstone for {key!r} in {topic}[{partition}] within {timeout_s:g} s")
    finally:
        consumer.close(autocommit=False)


def end_offset(settings: StreamSettings, partition: int) -> int:
    """Current end offset of one changelog partition (0 when the topic does not exist yet)."""
    topic = state_changelog_topic(settings)
    consumer = KafkaConsumer(**settings.kafka_client_config(), group_id=None, enable_auto_commit=False)
    try:
        if not consumer.partitions_for_topic(topic):
            return 0
        tp = TopicPartition(topic, partition)
        return int(consumer.end_offsets([tp])[tp])
    finally:
        consumer.close(autocommit=False)


def topic_end_offsets(settings: StreamSettings, topic: str) -> dict[int, int]:
    """{partition: end offset} of a topic."""
    consumer = KafkaConsumer(**settings.kafka_client_config(), group_id=None, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        return {tp.partition: int(end) for tp, end in consumer.end_offsets(tps).items()}
    finally:
        consumer.close(autocommit=False)


def feedback_progress(settings: StreamSettings, entries: dict[bytes, ChangelogEntry],
                      policy: str = "linear_ts") -> dict[int, tuple[dict[int, int], dict[int, int]]]:
    """{partition: (applied offsets of its population state, last offsets of the feedback topics)}.

    Topic indexes as in streams.worker.table_store.FEEDBACK_TOPICS (0 impressions, 1 clicks); a
    partition whose population has learned everything has applied == last.
    """
    names = TopicNames.from_settings(settings)
    ends = [topic_end_offsets(settings, topic) for topic in (names.impressions, names.clicks)]
    progress: dict[int, tuple[dict[int, int], dict[int, int]]] = {}
    for partition in range(settings.partitions):
        last = {index: ends[index][partition] - 1 for index in range(2) if ends[index].get(partition, 0) > 0}
        entry = entries.get(f"{policy}/global/{partition}".encode())
        applied = entry.unwrapped()[0] if entry is not None and entry.value is not None else {}
        progress[partition] = ({k: v for k, v in applied.items() if k in (0, 1)}, last)
    return progress


def caught_up(progress: dict[int, tuple[dict[int, int], dict[int, int]]]) -> bool:
    """True when every partition's population state holds every feedback record."""
    return all(applied == last for applied, last in progress.values())
