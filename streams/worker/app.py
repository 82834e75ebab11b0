"""The Faust app the worker runs, from `StreamSettings`: connection, security, RocksDB tables.

`make_app(settings)` builds a `SlatestreamApp` (streams.worker.faust_private): a `faust.App`
whose consumer feeds streams without a task per message and hands the topics of batch lanes
(streams.worker.lanes) whole fetches, with a larger producer buffer bound; measured in
bench/worker_throughput.py and docs/worker.md. Producer batches are larger
(`producer_max_batch_size`), because ~5 KB state values fill Faust's 16 KB default batch after
three writes.
"""

from __future__ import annotations

import faust

from streams.settings import StreamSettings
from streams.state_changelog import worker_app_id
from streams.worker.aiokafka_private import check_aiokafka_version
from streams.worker.faust_private import SlatestreamApp, check_faust_version


def broker_credentials(settings: StreamSettings) -> faust.SASLCredentials | faust.SSLCredentials | None:
    """Faust credentials for the settings' security protocol (None for PLAINTEXT); the TLS
    context presents the client certificate when `ssl_certfile` is set (mutual TLS)."""
    if settings.security_protocol.startswith("SASL_"):
        mechanism, username, password = settings.sasl_credentials()
        return faust.SASLCredentials(
            username=username, password=password.get_secret_value(), mechanism=mechanism,
            ssl_context=settings.ssl_context() if settings.security_protocol == "SASL_SSL" else None,
        )
    if settings.security_protocol == "SSL":
        return faust.SSLCredentials(settings.ssl_context())
    return None


def make_app(settings: StreamSettings) -> SlatestreamApp:
    """The worker's Faust app: one consumer group per (app id, topic prefix), RocksDB tables.
    FaustVersionError (AiokafkaVersionError) on a faust-streaming (aiokafka) other than the one the
    worker was checked against."""
    check_faust_version()
    check_aiokafka_version()
    return SlatestreamApp(
        worker_app_id(settings),
        broker=settings.broker_url,
        broker_credentials=broker_credentials(settings),
        store="rocksdb://",
        datadir=str(settings.store_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        web_enabled=False,
        broker_session_timeout=settings.broker_session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.broker_session_timeout_s / 6),
        consumer_auto_offset_reset="earliest",
        stream_wait_empty=False,
        producer_max_batch_size=settings.producer_max_batch_bytes,
        producer_linger=settings.producer_linger_ms / 1000,
        consumer_max_fetch_size=settings.consumer_max_fetch_bytes,
    )
