"""Faust's private names the worker uses: checked against one version, and our consumer."""

import faust
import pytest
from faust.stores.rocksdb import Store as RocksDBStore
from faust.transport.consumer import Consumer as FaustConsumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Producer as FaustProducer

from streams.settings import StreamSettings
from streams.worker.app import make_app
from streams.worker.faust_private import (
    FAUST_VERSION,
    BatchDrainConsumer,
    FaustVersionError,
    check_faust_version,
)

PRIVATE_NAMES = {
    FaustConsumer: ("_drain_messages", "_wait_next_records", "_read_offset", "_add_gap", "_n_acked",
                    "_committed_offset", "_acked_index", "_acked", "_waiting_for_ack", "_buffered_partitions",
                    "_to_message", "_get_active_partitions", "_commit_every", "_thread", "_is_changelog_tp",
                    "_getmany"),
    AIOKafkaConsumerThread: ("_ensure_consumer",),
    faust.App: ("_new_transport", "_new_producer"),
    RocksDBStore: ("_db_for_partition", "offset_key"),
    FaustProducer: ("_ensure_producer",),
    faust.streams: ("_current_event",),
}


def test_the_private_names_are_those_of_the_one_checked_faust_version(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Every private name of streams/worker/faust_private.py was read from FAUST_VERSION: any other
    installed version fails here (and make_app refuses it), so a bump re-reads them first."""
    assert faust.__version__ == FAUST_VERSION
    check_faust_version()
    consumer = make_app(StreamSettings(broker_url="kafka://127.0.0.1:1", store_dir=tmp_path)).consumer
    assert isinstance(consumer._thread, AIOKafkaConsumerThread)
    for owner, names in PRIVATE_NAMES.items():
        for name in names:
            assert hasattr(consumer if owner is FaustConsumer else owner, name), f"{owner!r}.{name} is gone"
    with pytest.raises(FaustVersionError, match=r"install faust-streaming==0\.15\.3"):
        check_faust_version("0.16.0")


def test_a_batch_lane_takes_its_topics_and_another_faust_is_refused(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from streams.worker.lanes import BatchLane

    settings = StreamSettings(broker_url="kafka://127.0.0.1:1", topic_prefix="t.", app_id="a", store_dir=tmp_path)
    app = make_app(settings)
    lane = BatchLane(["t.impressions", "t.clicks"])
    app.add_batch_lane(lane)
    assert app.batch_lanes == {"t.impressions": lane, "t.clicks": lane}
    monkeypatch.setattr(faust, "__version__", "0.0.1")
    with pytest.raises(FaustVersionError):
        make_app(settings)


def test_pausing_and_resuming_a_lane_partition_keeps_fausts_partition_type(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A fetched record's `tp` is aiokafka's TopicPartition; Faust asserts its active partitions
    are its own `TP` (a lane resuming a partition once crashed the worker at 20,000 waiting)."""
    from aiokafka import TopicPartition
    from faust.types import TP

    settings = StreamSettings(broker_url="kafka://127.0.0.1:1", topic_prefix="t.", app_id="a", store_dir=tmp_path)
    consumer = make_app(settings).consumer
    assert isinstance(consumer, BatchDrainConsumer)
    consumer._active_partitions = {TP("t.requests", 0), TP("t.requests", 1)}
    consumer.on_buffer_full(TopicPartition("t.requests", 0))
    assert consumer._get_active_partitions() == {TP("t.requests", 1)}
    consumer.on_buffer_drop(TopicPartition("t.requests", 0))
    active = consumer._get_active_partitions()
    assert active == {TP("t.requests", 0), TP("t.requests", 1)} and all(type(tp) is TP for tp in active)


def lane_consumer(tmp_path, topic: str):  # type: ignore[no-untyped-def]
    """A BatchDrainConsumer (no broker) with acks on for `topic`, and a lane for it."""
    from streams.worker.lanes import BatchLane

    settings = StreamSettings(broker_url="kafka://127.0.0.1:1", topic_prefix="t.", app_id="a", store_dir=tmp_path)
    app = make_app(settings)
    lane = BatchLane([topic], max_batch=100, high_water=1_000, low_water=10)
    app.add_batch_lane(lane)
    app.topics._acking_topics.add(topic)
    return app.consumer, lane


def fetched(topic: str, partition: int, *offsets: int) -> list:  # type: ignore[type-arg]
    from aiokafka.structs import ConsumerRecord

    return [ConsumerRecord(topic, partition, offset, 0, 0, b"k", b"v", None, 1, 1, ()) for offset in offsets]


def test_lane_acks_become_the_offset_faust_commits_once_contiguous(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from aiokafka import TopicPartition

    consumer, _ = lane_consumer(tmp_path, "t.impressions")
    tp = TopicPartition("t.impressions", 0)
    consumer.ack_offsets(tp, [0, 1, 3])
    assert consumer._new_offset(tp) == 2  # 3 waits for 2
    consumer.ack_offsets(tp, [2, 3, 4])  # 3 again counts once
    assert consumer._new_offset(tp) == 5 and consumer._n_acked == 5
    consumer._committed_offset[tp] = 10
    consumer.ack_offsets(tp, [8, 9])  # below the committed offset: already done
    assert consumer._acked[tp] == []


def test_a_fetch_goes_to_its_lane_whole_minus_what_was_read_with_its_offset_gaps_noted(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from aiokafka import TopicPartition

    from streams.worker.lanes import records

    async def scenario() -> tuple[list[int], int | None, int | None]:
        consumer, lane = lane_consumer(tmp_path, "t.clicks")
        tp = TopicPartition("t.clicks", 1)
        consumer.assignment = lambda: {tp}
        generation = consumer.app.consumer_generation_id
        assert await consumer._to_lane(lane, tp, fetched("t.clicks", 1, 0, 1, 2, 5, 6), generation)  # 3, 4: markers
        assert await consumer._to_lane(lane, tp, fetched("t.clicks", 1, 4, 5, 8), generation)  # 4, 5 read already
        lane.fetched()
        batch = await lane.batches().__anext__()
        read = consumer._read_offset[tp]
        lane.ack(batch)
        return [r.offset for r in records(batch)], read, consumer._new_offset(tp)

    taken, read, commit_at = asyncio.run(scenario())
    assert taken == [0, 1, 2, 5, 6, 8]
    assert read == 8 and commit_at == 9  # the gaps 3..4 and 7 do not hold the commit back


def test_a_chunk_whose_rebalance_began_meanwhile_never_reaches_the_lane(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The revocation handler drops what waits in the lanes after Faust stops the flow; a chunk
    whose hand-over awaited a commit across that moment must not arrive after the drop (learned
    first after a re-assignment, it would make the redelivered records before it look like
    replays)."""
    import asyncio

    from aiokafka import TopicPartition

    async def scenario() -> tuple[bool, bool, int, int | None]:
        consumer, lane = lane_consumer(tmp_path, "t.impressions")
        tp = TopicPartition("t.impressions", 0)
        generation = consumer.app.consumer_generation_id
        consumer._commit_every, consumer._n_acked = 1, 1  # the next hand-over commits first

        async def commit_during_which_a_revocation_starts(*_: object, **__: object) -> bool:
            consumer.stop_flow()
            return True

        consumer.commit = commit_during_which_a_revocation_starts
        handed = await consumer._to_lane(lane, tp, fetched("t.impressions", 0, 1000, 1001), generation)
        consumer.resume_flow()
        consumer.app.consumer_generation_id = generation + 1  # a new assignment since the fetch
        stale = await consumer._to_lane(lane, tp, fetched("t.impressions", 0, 1002), generation)
        return handed, stale, lane.waiting, consumer._read_offset[tp]

    assert asyncio.run(scenario()) == (False, False, 0, None)


def test_a_fetch_splits_into_lane_chunks_and_faust_messages_for_the_other_topics(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from aiokafka import TopicPartition

    from streams.worker.lanes import records

    async def scenario() -> tuple[list[tuple[str, int]], list[int], list[int], list[tuple[str, int, int]]]:
        consumer, lane = lane_consumer(tmp_path, "t.impressions")
        lane_tp, other_tp, idle_tp = (TopicPartition("t.impressions", 0), TopicPartition("t.items", 0),
                                      TopicPartition("t.impressions", 1))
        kafka = FakeKafkaConsumer({lane_tp: 7, other_tp: 8, idle_tp: 10})
        consumer._thread = FakeConsumerThread(kafka)

        async def fetch(timeout: float):  # type: ignore[no-untyped-def]
            return {lane_tp: fetched("t.impressions", 0, 5, 6), other_tp: fetched("t.items", 0, 7),
                    idle_tp: fetched("t.impressions", 1, 9)}, {lane_tp, other_tp}  # partition 1 not active

        consumer._wait_next_records = fetch
        consumer.highwater = lambda tp: 8
        consumer.assignment = lambda: {lane_tp}
        yielded = [(message.topic, message.offset) async for _, message in consumer._getmany_past_lanes(1.0,
                                                                                            {"t.impressions": lane})]
        lane.fetched()
        batch = await lane.batches().__anext__()
        return yielded, [r.offset for r in records(batch)], [lane.waiting], kafka.seeks

    yielded, to_lane, waiting, seeks = asyncio.run(scenario())
    assert yielded == [("t.items", 7)] and to_lane == [5, 6] and waiting == [0]
    assert seeks == [("t.impressions", 1, 9)]  # the paused partition's record is fetched again, not lost


class FakeKafkaConsumer:
    """aiokafka's consumer as `rewind_positions` sees it: the assignment, each partition's
    position (the offset of the next record it delivers), seeks."""

    def __init__(self, positions: dict) -> None:  # type: ignore[type-arg]
        self.positions = dict(positions)
        self.seeks: list[tuple[str, int, int]] = []

    def assignment(self) -> set:  # type: ignore[type-arg]
        return set(self.positions)

    async def position(self, tp):  # type: ignore[no-untyped-def]
        return self.positions[tp]

    def seek(self, tp, offset: int) -> None:  # type: ignore[no-untyped-def]
        self.seeks.append((tp.topic, tp.partition, offset))
        self.positions[tp] = offset


class FakeConsumerThread:
    """Faust's consumer thread, running what it is handed at once."""

    def __init__(self, kafka: FakeKafkaConsumer) -> None:
        self.kafka = kafka

    def _ensure_consumer(self) -> FakeKafkaConsumer:
        return self.kafka

    async def call_thread(self, fun, *args):  # type: ignore[no-untyped-def]
        return await fun(*args)


def test_a_partition_is_moved_back_to_its_first_record_not_taken_never_forward() -> None:
    import asyncio

    from aiokafka import TopicPartition
    from aiokafka.errors import IllegalStateError

    from streams.worker.positions import rewind_positions

    past, before, revoked_meanwhile, gone = (TopicPartition("t.clicks", p) for p in range(4))
    kafka = FakeKafkaConsumer({past: 10, before: 3, revoked_meanwhile: 0})

    async def position(tp):  # type: ignore[no-untyped-def]
        if tp == revoked_meanwhile:
            raise IllegalStateError("not assigned")
        return kafka.positions[tp]

    kafka.position = position  # type: ignore[method-assign]
    moved = asyncio.run(rewind_positions(kafka, {past: 4, before: 5, revoked_meanwhile: 0, gone: 0}))
    assert moved == {past: (10, 4)} and kafka.seeks == [("t.clicks", 0, 4)]


def test_a_fetch_that_returns_after_the_flow_stopped_is_fetched_again_where_no_offset_is_committed(
        tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The takeover stall (docs/reliability.md): a fetch that returns once a rebalance stopped the
    flow is dropped, as Faust drops it, and Faust's seek to the committed offsets afterwards moves
    only partitions with a committed offset (aiokafka's seek_to_committed). A partition the dead
    peer never committed kept its position past the dropped records: they were never learned."""
    import asyncio

    from aiokafka import TopicPartition

    async def scenario() -> tuple[list[tuple[str, int, int]], list[object], int]:
        consumer, lane = lane_consumer(tmp_path, "t.impressions")
        lane_tp, other_tp = TopicPartition("t.impressions", 2), TopicPartition("t.items", 2)
        kafka = FakeKafkaConsumer({lane_tp: 7, other_tp: 8})
        consumer._thread = FakeConsumerThread(kafka)

        async def fetch(timeout: float):  # type: ignore[no-untyped-def]
            consumer.stop_flow()  # a rebalance began while the fetch waited
            return {lane_tp: fetched("t.impressions", 2, 5, 6), other_tp: fetched("t.items", 2, 7)}, {lane_tp}

        async def seek_to_committed_offsets() -> None:  # none is committed: aiokafka seeks nothing
            return None

        consumer._wait_next_records = fetch
        consumer.perform_seek = seek_to_committed_offsets
        yielded = [message async for _, message in consumer._getmany_past_lanes(1.0, {"t.impressions": lane})]
        return kafka.seeks, yielded, lane.waiting

    seeks, yielded, waiting = asyncio.run(scenario())
    assert yielded == [] and waiting == 0
    assert sorted(seeks) == [("t.impressions", 2, 5), ("t.items", 2, 7)]


def test_what_a_rebalance_cut_off_in_a_fetch_is_fetched_again(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A rebalance that begins while one partition's chunk is handed over (a commit awaited) or
    between two messages of the other topics: the rest of the fetch is dropped, and fetched again."""
    import asyncio

    from aiokafka import TopicPartition

    async def scenario(stop_at: str) -> tuple[list[tuple[str, int, int]], list[int], int]:
        consumer, lane = lane_consumer(tmp_path, "t.impressions")
        first, second, items = (TopicPartition("t.impressions", 0), TopicPartition("t.impressions", 1),
                                TopicPartition("t.items", 0))
        kafka = FakeKafkaConsumer({first: 3, second: 12, items: 23})
        consumer._thread = FakeConsumerThread(kafka)
        consumer.highwater = lambda tp: 30
        consumer.assignment = lambda: {first, second, items}

        async def fetch(timeout: float):  # type: ignore[no-untyped-def]
            return ({first: fetched("t.impressions", 0, 1, 2), second: fetched("t.impressions", 1, 10, 11),
                     items: fetched("t.items", 0, 20, 21, 22)}, {first, second, items})

        consumer._wait_next_records = fetch
        if stop_at == "hand-over":
            consumer._commit_every, consumer._n_acked = 1, 1  # the first hand-over commits first

            async def commit_during_which_a_revocation_starts(*_: object, **__: object) -> bool:
                consumer.stop_flow()
                return True

            consumer.commit = commit_during_which_a_revocation_starts
        yielded = []
        async for _, message in consumer._getmany_past_lanes(1.0, {"t.impressions": lane}):
            yielded.append(message.offset)
            if stop_at == "messages":
                consumer.stop_flow()
        return sorted(kafka.seeks), yielded, lane.waiting

    assert asyncio.run(scenario("hand-over")) == (
        [("t.impressions", 0, 1), ("t.impressions", 1, 10), ("t.items", 0, 20)], [], 0)
    assert asyncio.run(scenario("messages")) == ([("t.items", 0, 21)], [20], 4)


def test_what_a_lane_held_from_before_the_seek_to_the_committed_offsets_is_taken_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """After a recovery Faust resumes the stream partitions and only then seeks them back to their
    committed offsets: a fetch in between handed the lane records that the seek brings again (a
    lane held both copies: docs/reliability.md). The seek now drops what the lane holds and each
    partition is fetched again from its first record dropped: the one with a committed offset is
    already there, the one without (aiokafka's seek leaves it at 8) is moved back; then each
    record is taken once."""
    import asyncio

    from aiokafka import TopicPartition

    from streams.worker.lanes import records

    async def scenario() -> tuple[int, list[tuple[int, int]], list[tuple[str, int, int]]]:
        consumer, lane = lane_consumer(tmp_path, "t.impressions")
        committed, uncommitted = TopicPartition("t.impressions", 0), TopicPartition("t.impressions", 1)
        kafka = FakeKafkaConsumer({committed: 8, uncommitted: 8})
        thread = FakeConsumerThread(kafka)

        async def seek_to_committed() -> dict:  # type: ignore[type-arg]
            kafka.positions[committed] = 5  # only partition 0 has a committed offset
            return {committed: 5}

        thread.seek_to_committed = seek_to_committed  # type: ignore[attr-defined]
        consumer._thread = thread
        consumer.assignment = lambda: {committed, uncommitted}
        generation = consumer.app.consumer_generation_id
        for tp, offsets in ((committed, (5, 6, 7)), (uncommitted, (2, 3))):  # before the seek
            assert await consumer._to_lane(lane, tp, fetched(tp.topic, tp.partition, *offsets), generation)
        await consumer.perform_seek()
        waiting_after_seek = lane.waiting
        for tp, offsets in ((committed, (5, 6, 7)), (uncommitted, (2, 3))):  # fetched again
            assert await consumer._to_lane(lane, tp, fetched(tp.topic, tp.partition, *offsets), generation)
        lane.fetched()
        taken = [(r.partition, r.offset) for chunk in [await lane.batches().__anext__()] for r in records(chunk)]
        return waiting_after_seek, sorted(taken), kafka.seeks

    waiting_after_seek, taken, seeks = asyncio.run(scenario())
    assert waiting_after_seek == 0
    assert taken == [(0, 5), (0, 6), (0, 7), (1, 2), (1, 3)]  # each once (before: 10 records, each twice)
    assert seeks == [("t.impressions", 1, 2)]


def test_faust_never_fetches_the_topics_fetched_apart(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The request partitions stay assigned to Faust's consumer (their offsets are committed there)
    but are left out of every fetch it takes; with nothing else active it fetches nothing (aiokafka
    reads an empty set of partitions as every partition)."""
    import asyncio

    from faust.types import TP

    consumer, _ = lane_consumer(tmp_path, "t.impressions")
    told: list[tuple[list[TP], bool]] = []  # what the request fetcher hears of Faust's pauses
    consumer.app.fetch_apart(["t.requests"], lambda tps, taking: told.append((tps, taking)))
    asked: list[set] = []  # type: ignore[type-arg]

    class Thread:
        async def getmany(self, active, timeout):  # type: ignore[no-untyped-def]
            asked.append(set(active))
            return {}

    consumer._thread = Thread()

    async def fetches() -> list[object]:
        return [await consumer._getmany({TP("t.requests", 0), TP("t.impressions", 0)}, 0.01),
                await consumer._getmany({TP("t.requests", 1)}, 0.01)]

    assert asyncio.run(fetches()) == [{}, {}]
    assert asked == [{TP("t.impressions", 0)}]
    checked: list[TP] = []  # Faust's livelock check would log an error for each request partition
    consumer._thread.verify_event_path = lambda now, tp: checked.append(tp)
    consumer.verify_event_path(0.0, TP("t.requests", 0))
    consumer.verify_event_path(0.0, TP("t.impressions", 0))
    assert checked == [TP("t.impressions", 0)]
    consumer.pause_partitions([TP("t.requests", 0), TP("t.impressions", 0)])  # an assignment: recovery first
    consumer.resume_partitions(iter([TP("t.requests", 0), TP("t.impressions", 0)]))  # the state recovered
    assert told == [([TP("t.requests", 0)], False), ([TP("t.requests", 0)], True)]
    assert TP("t.impressions", 0) in consumer._get_active_partitions()  # Faust's own pause and resume too


def test_records_fetched_apart_have_their_gaps_noted_from_the_committed_offset(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The request fetcher's first fetch of a partition starts at the group's committed offset;
    offsets missing before its first record (deleted by retention, transaction markers) would hold
    the commit back for good."""
    import asyncio

    from aiokafka import TopicPartition
    from faust.types import TP

    consumer, _ = lane_consumer(tmp_path, "t.requests")
    tp = TopicPartition("t.requests", 0)
    consumer._committed_offset[TP("t.requests", 0)] = 10
    asyncio.run(consumer.note_gaps(tp, None, fetched("t.requests", 0, 13, 14)))
    asyncio.run(consumer.note_gaps(tp, 14, fetched("t.requests", 0, 16)))
    consumer.ack_offsets(tp, [13, 14, 16])
    assert consumer._new_offset(tp) == 17
