"""The worker's Faust app: our consumer and producer settings are the ones Faust uses."""

from streams.settings import StreamSettings
from streams.worker.app import make_app
from streams.worker.faust_private import BatchDrainConsumer, SlatestreamApp


def test_make_app_wires_the_consumer_the_producer_buffer_and_the_settings(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = StreamSettings(broker_url="kafka://127.0.0.1:1", topic_prefix="t.", app_id="a", store_dir=tmp_path,
                              producer_max_batch_bytes=500_000, producer_linger_ms=3,
                              consumer_max_fetch_bytes=3_000_000)
    app = make_app(settings)
    assert isinstance(app, SlatestreamApp) and app.conf.id == "a-t"
    assert app.transport.Consumer is BatchDrainConsumer
    assert app.producer.buffer.max_messages == SlatestreamApp.producer_buffer_messages
    assert app.conf.producer_max_batch_size == 500_000 and app.conf.producer_linger == 0.003
    assert app.conf.consumer_max_fetch_size == 3_000_000
    assert make_app(StreamSettings(store_dir=tmp_path)).conf.consumer_max_fetch_size == 8 * 1024 * 1024
