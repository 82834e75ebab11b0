"""Every worker knows every item: the catalog topic, written by the worker that embeds an item,
followed by all of them.

    items topic ─> (the worker owning the item's partition) embed ─> catalog topic (item + vector)
    catalog topic ─> CatalogFollower (every worker, all partitions, no consumer group) ─> catalog

The catalog topic is compacted and keyed by item id (the latest vector of every item survives);
each record's value is `catalog_codec.catalog_value(item, vector)`. A follower (a thread of the worker,
applying what it reads on the event loop) reads it from the beginning at start-up (`caught_up`
once it reached the end offsets it found then: the worker is ready) and then tails it, so an
item is rankable on every worker a fetch after its vector is written (`fetch_max_wait_ms`, 100 ms),
whichever worker embedded it, across restarts, rebalances and broker outages (a Kafka error
is logged once, then retried every second from where it stopped, until the broker is back).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from streams.settings import StreamSettings
from streams.worker.core import WorkerCore

log = logging.getLogger("slatestream.worker")
RETRY_S = 1.0
"""Seconds between attempts while the broker cannot be reached."""


class CatalogFollower:
    """Applies the catalog topic's records to a worker's in-memory catalog (see the module doc).

    Args:
        core: whose catalog is kept.
        topic: the catalog topic.
    """

    def __init__(self, core: WorkerCore, topic: str) -> None:
        self.core = core
        self.topic = topic
        self.applied = 0
        self.bad = 0
        self.caught_up = False
        self._targets: dict[int, int] = {}

    def apply(self, records: Iterable[Any]) -> int:
        """Load catalog records (anything with `partition`, `offset` and `value`); returns how
        many items were loaded. A record that cannot be read is counted and skipped (the worker
        wrote it; the item's next record replaces it)."""
        loaded = 0
        for record in records:
            if record.value is None:
                continue  # a tombstone: the compacted topic drops the item; the catalog keeps its row
            try:
                self.core.load_catalog_value(bytes(record.value))
            except ValueError as error:
                self.bad += 1
                log.warning("catalog record %s[%d]@%d skipped: %s", self.topic, record.partition, record.offset, error)
                continue
            loaded += 1
        self.applied += loaded
        return loaded

    def note_positions(self, positions: dict[int, int]) -> None:
        """The consumer's positions per partition: caught up once every one reached its target."""
        if not self.caught_up and all(positions.get(p, 0) >= end for p, end in self._targets.items()):
            self.caught_up = True
            log.info("catalog: %d items loaded from %s, caught up", len(self.core.catalog), self.topic)

    def start(self, settings: StreamSettings, loop: asyncio.AbstractEventLoop, fetch_max_wait_ms: int = 100,
              ) -> threading.Thread:
        """Follow the topic for good in a daemon thread (kafka-python, no consumer group): records
        are applied on `loop`, the event loop that ranks with the catalog."""
        thread = threading.Thread(target=self._follow, args=(settings, loop, fetch_max_wait_ms),
                                  name="slatestream-catalog", daemon=True)
        thread.start()
        return thread

    def _follow(self, settings: StreamSettings, loop: asyncio.AbstractEventLoop, fetch_max_wait_ms: int) -> None:
        consumer: KafkaConsumer | None = None
        failing_since: float | None = None
        while not loop.is_closed():
            records: list[Any] = []
            positions: dict[int, int] = {}
            try:
                if consumer is None:
                    consumer = self._open(settings, loop, fetch_max_wait_ms)
                batches = consumer.poll(timeout_ms=1000, max_records=5000)
                records = [record for batch in batches.values() for record in batch]
                positions = {tp.partition: int(consumer.position(tp)) for tp in consumer.assignment()}
            except KafkaError as error:  # a broker outage: once in the log, then retried where it stopped
                if failing_since is None:
                    failing_since = time.monotonic()
                    log.warning("catalog follower: %r; retrying every %g s", error, RETRY_S)
                time.sleep(RETRY_S)
            except Exception:  # logged; the worker then reports not ready (/readyz) and requests wait
                log.exception("the catalog follower stopped")
                return
            else:
                if failing_since is not None:
                    log.info("catalog follower: following %s again after %.1f s", self.topic,
                             time.monotonic() - failing_since)
                    failing_since = None
            if records or positions:  # records polled before an error are applied, never dropped
                loop.call_soon_threadsafe(self._applied, records, positions)

    def _open(self, settings: StreamSettings, loop: asyncio.AbstractEventLoop, fetch_max_wait_ms: int,
              ) -> KafkaConsumer:
        """The consumer, assigned every partition from its beginning; the end offsets it found are
        what `caught_up` waits for."""
        consumer = KafkaConsumer(**settings.kafka_client_config(), group_id=None, enable_auto_commit=False,
                                 fetch_max_wait_ms=fetch_max_wait_ms, client_id=f"{settings.app_id}-catalog")
        try:
            tps = [TopicPartition(self.topic, p) for p in sorted(consumer.partitions_for_topic(self.topic) or ())]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            self._targets = {tp.partition: int(end) for tp, end in consumer.end_offsets(tps).items()}
        except BaseException:
            consumer.close()
            raise
        loop.call_soon_threadsafe(self.note_positions, {})
        return consumer

    def _applied(self, records: list[Any], positions: dict[int, int]) -> None:
        if records:
            self.apply(records)
        self.note_positions(positions)
