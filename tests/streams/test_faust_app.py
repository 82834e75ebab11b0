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
