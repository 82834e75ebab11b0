"""The worker's Faust app: our consumer and producer settings are the ones Faust uses."""

import faust

from streams.faust_app import FAUST_VERSION, BatchDrainConsumer, SlatestreamApp, make_app
from streams.settings import StreamSettings


def test_the_copied_drain_loop_matches_the_installed_faust() -> None:
    """BatchDrainConsumer._drain_messages is a copy of Faust's with one change; on another
    Faust version it falls back to Faust's own. Upgrading Faust must re-check the copy."""
    assert faust.__version__ == FAUST_VERSION


def test_make_app_wires_the_consumer_the_producer_buffer_and_the_settings(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = StreamSettings(broker_url="kafka://127.0.0.1:1", topic_prefix="t.", app_id="a", store_dir=tmp_path,
                              producer_max_batch_bytes=500_000, producer_linger_ms=3)
    app = make_app(settings)
    assert isinstance(app, SlatestreamApp) and app.conf.id == "a-t"
    assert app.transport.Consumer is BatchDrainConsumer
    assert app.producer.buffer.max_messages == SlatestreamApp.producer_buffer_messages
    assert app.conf.producer_max_batch_size == 500_000 and app.conf.producer_linger == 0.003


def test_a_batch_lane_takes_its_topics_on_the_pinned_faust_only(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from streams.batch_lane import BatchLane

    settings = StreamSettings(broker_url="kafka://127.0.0.1:1", topic_prefix="t.", app_id="a", store_dir=tmp_path)
    app = make_app(settings)
    lane = BatchLane(["t.impressions", "t.clicks"])
    assert app.add_batch_lane(lane) and app.batch_lanes == {"t.impressions": lane, "t.clicks": lane}
    other = make_app(settings)
    monkeypatch.setattr(faust, "__version__", "0.0.1")
    assert not other.add_batch_lane(BatchLane(["t.clicks"])) and other.batch_lanes == {}


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
    from streams.batch_lane import BatchLane

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

    from streams.batch_lane import records

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

    from streams.batch_lane import records

    async def scenario() -> tuple[list[tuple[str, int]], list[int], list[int]]:
        consumer, lane = lane_consumer(tmp_path, "t.impressions")
        lane_tp, other_tp, idle_tp = (TopicPartition("t.impressions", 0), TopicPartition("t.items", 0),
                                      TopicPartition("t.impressions", 1))

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
        return yielded, [r.offset for r in records(batch)], [lane.waiting]

    yielded, to_lane, waiting = asyncio.run(scenario())
    assert yielded == [("t.items", 7)] and to_lane == [5, 6] and waiting == [0]
