"""The request fetcher against the real broker: the group's committed offsets, revocation, acks."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from streams.settings import StreamSettings
from streams.topics import TopicNames, ensure_topics
from streams.worker.lanes import BatchLane, records
from streams.worker.request_fetcher import RequestFetcher, request_consumer

pytestmark = pytest.mark.kafka


class Keeper:
    """Faust's consumer as the fetcher sees it: what was acked, the gaps it was asked to note."""

    def __init__(self) -> None:
        self.acked: dict[tuple[str, int], list[int]] = {}
        self.gaps: list[tuple[int, int | None, int]] = []  # (partition, previous, first offset)

    def ack_offsets(self, tp: Any, offsets: list[int]) -> None:
        self.acked.setdefault((tp.topic, tp.partition), []).extend(offsets)

    async def note_gaps(self, tp: Any, previous: int | None, fetched: Sequence[Any]) -> None:
        self.gaps.append((tp.partition, previous, int(fetched[0].offset)))


def produce(settings: StreamSettings, topic: str, values: dict[int, int]) -> None:
    """`values[p]` records to partition p of `topic` (values "p-n")."""
    producer = KafkaProducer(**settings.kafka_client_config())
    for partition, count in values.items():
        for n in range(count):
            producer.send(topic, key=b"u", value=f"{partition}-{n}".encode(), partition=partition)
    producer.flush()
    producer.close()


def commit(settings: StreamSettings, group: str, topic: str, partition: int, offset: int) -> None:
    """Commit `offset` for the group, as the worker's Faust consumer does."""
    consumer = KafkaConsumer(group_id=group, enable_auto_commit=False, **settings.kafka_client_config())
    consumer.commit({TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)})
    consumer.close()


async def taken(lane: BatchLane, count: int, timeout_s: float = 20.0) -> list[Any]:
    """The next `count` records the lane hands over (each list acked), within `timeout_s`."""
    out: list[Any] = []
    lists = lane.batches()
    async with asyncio.timeout(timeout_s):
        while len(out) < count:
            batch = await lists.__anext__()
            out.extend(records(batch))
            lane.ack(batch)
    return out


def test_the_fetcher_reads_its_partitions_from_the_committed_offsets_and_stops_at_revocation(
        kafka_settings: StreamSettings) -> None:
    ensure_topics(kafka_settings)
    topic, group = TopicNames.from_settings(kafka_settings).requests, f"{kafka_settings.topic_prefix}group"
    produce(kafka_settings, topic, {0: 5, 1: 3})
    commit(kafka_settings, group, topic, 0, 2)  # partition 0: 0 and 1 ranked before; 1 has no commit

    class Assigned:
        def __init__(self, topic: str, partition: int) -> None:
            self.topic, self.partition = topic, partition

    async def scenario() -> tuple[list[str], list[str], int, Keeper, set[Any]]:
        keeper, lane = Keeper(), BatchLane([topic], max_batch=64)
        fetcher = RequestFetcher(topic, lane, lambda: keeper, lambda: request_consumer(
            kafka_settings.aiokafka_client_config(), group, 1 << 20))
        fetcher.assign_from([Assigned(topic, 0), Assigned(f"{kafka_settings.topic_prefix}clicks", 1)])
        task = asyncio.create_task(fetcher.run())
        try:
            await asyncio.sleep(2.0)  # Faust holds the partition (its state is being recovered): nothing
            waiting_while_held = lane.waiting
            fetcher.faust_takes([Assigned(topic, 0), Assigned(topic, 1)], taking=True)
            first = [record.value.decode() for record in await taken(lane, 3)]
            fetcher.stop_fetching()
            produce(kafka_settings, topic, {0: 2})
            await asyncio.sleep(2.0)  # long enough for several fetches
            waiting_after_stop = lane.waiting
            fetcher.release()
            owned_after_release = fetcher.assignment()
            fetcher.assign_from([Assigned(topic, 1)])
            second = [record.value.decode() for record in await taken(lane, 3)]
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        return first, second, waiting_while_held + waiting_after_stop, keeper, owned_after_release

    first, second, waiting_after_stop, keeper, owned_after_release = asyncio.run(scenario())
    assert first == ["0-2", "0-3", "0-4"]  # from the committed offset; the clicks partition ignored
    assert waiting_after_stop == 0 and owned_after_release == set()
    assert second == ["1-0", "1-1", "1-2"]  # no committed offset: the earliest record
    assert keeper.acked == {(topic, 0): [2, 3, 4], (topic, 1): [0, 1, 2]}
    assert keeper.gaps == [(0, None, 2), (1, None, 0)]  # each partition's first fetch: from the committed offset


def test_a_fetch_for_a_revoked_partition_is_never_acked(kafka_settings: StreamSettings) -> None:
    """A list taken after `release` skips the chunks of partitions no longer owned (the next
    owner ranks them from the committed offset)."""
    ensure_topics(kafka_settings)
    topic, group = TopicNames.from_settings(kafka_settings).requests, f"{kafka_settings.topic_prefix}group"
    produce(kafka_settings, topic, {2: 4})

    class Assigned:
        def __init__(self, partition: int) -> None:
            self.topic, self.partition = topic, partition

    async def scenario() -> tuple[int, Keeper]:
        keeper, lane = Keeper(), BatchLane([topic], max_batch=2)
        fetcher = RequestFetcher(topic, lane, lambda: keeper, lambda: request_consumer(
            kafka_settings.aiokafka_client_config(), group, 1 << 20))
        fetcher.assign_from([Assigned(2)])
        fetcher.faust_takes([Assigned(2)], taking=True)
        task = asyncio.create_task(fetcher.run())
        try:
            async with asyncio.timeout(20.0):
                while lane.waiting < 4:
                    await asyncio.sleep(0.05)
            fetcher.stop_fetching()
            fetcher.release()
            lists = lane.batches()
            with pytest.raises(TimeoutError):  # every waiting chunk is skipped: nothing is handed over
                async with asyncio.timeout(1.0):
                    await lists.__anext__()
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        return lane.waiting, keeper

    waiting, keeper = asyncio.run(scenario())
    assert waiting == 0 and keeper.acked == {}


def test_a_fetcher_whose_broker_refused_it_starts_again_with_a_fresh_consumer(
        kafka_settings: StreamSettings) -> None:
    """The first consumer's start is refused (nothing listens there); the fetcher logs it, stops
    that consumer and starts a fresh one, which fetches what was wanted all along."""
    from tests.streams.test_preflight import refused_port

    ensure_topics(kafka_settings)
    topic, group = TopicNames.from_settings(kafka_settings).requests, f"{kafka_settings.topic_prefix}group"
    produce(kafka_settings, topic, {3: 2})
    nowhere = {**kafka_settings.aiokafka_client_config(), "bootstrap_servers": f"127.0.0.1:{refused_port()}"}
    configs = [nowhere, kafka_settings.aiokafka_client_config()]
    made: list[Any] = []

    class Assigned:
        def __init__(self, partition: int) -> None:
            self.topic, self.partition = topic, partition

    stopped: list[Any] = []

    def make() -> Any:
        consumer = request_consumer(configs[min(len(made), 1)], group, 1 << 20)
        stop = consumer.stop

        async def stop_and_note() -> None:
            stopped.append(consumer)
            await stop()

        consumer.stop = stop_and_note  # type: ignore[method-assign]
        made.append(consumer)
        return consumer

    async def scenario() -> list[str]:
        lane = BatchLane([topic], max_batch=64)
        fetcher = RequestFetcher(topic, lane, Keeper, make)
        fetcher.faust_takes([Assigned(3)], taking=True)  # Faust resumed it before the fetcher was assigned it
        fetcher.assign_from([Assigned(3)])
        task = asyncio.create_task(fetcher.run())
        try:
            return [record.value.decode() for record in await taken(lane, 2, timeout_s=60.0)]
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    assert asyncio.run(scenario()) == ["3-0", "3-1"]
    assert len(made) == 2 and stopped == made  # the refused one at once, the other at the end
