"""Start a worker: create the topics, build the app and its topology, run until SIGTERM/SIGINT."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import faust

from encoders.base import Encoder
from encoders.retrieval import ScorerRetriever
from encoders.scoring import make_scorer
from online.catalog import Catalog
from online.config import SlatestreamConfig
from streams.checksums import checksum_warning
from streams.control import ensure_control_topic
from streams.leaderboard import ensure_leaderboard_topic
from streams.outages import quiet_outages
from streams.settings import StreamSettings
from streams.state_changelog import state_changelog_topic, worker_app_id
from streams.topics import create_topics, ensure_topics
from streams.worker.app import make_app
from streams.worker.config import WorkerConfig
from streams.worker.core import Embed, WorkerCore
from streams.worker.embedding import WorkerEmbedding
from streams.worker.leaderboard import add_leaderboard
from streams.worker.observability import observe
from streams.worker.partition_state import StateTables
from streams.worker.preflight import preflight
from streams.worker.service import WorkerService
from streams.worker.startup_log import StartupLog
from streams.worker.topology import WorkerTopology

log = logging.getLogger("slatestream.worker")


def internal_topic_specs(settings: StreamSettings) -> dict[str, dict[str, Any]]:
    """The topics Faust would create at start-up: the state table's compacted changelog (one
    partition per source partition) and the assignor's one-partition leader topic."""
    app_id = worker_app_id(settings)
    changelog = {"num_partitions": settings.partitions, "replication_factor": settings.replication_factor,
                 "configs": {"cleanup.policy": "compact"}}
    return {state_changelog_topic(settings): changelog,
            f"{app_id}-__assignor-__leader": {"num_partitions": 1,
                                              "replication_factor": settings.replication_factor, "configs": {}}}


def build_worker(settings: StreamSettings, model: SlatestreamConfig, config: WorkerConfig, embed: Embed,
                 embedding_version: Callable[[], str] | None = None) -> WorkerTopology:
    """The Faust app with the worker declared on it (topics must exist). Requests without
    candidates retrieve on the scoring backend of the configured device (torch on CUDA when
    present, numpy otherwise), kept in step with the catalog."""
    app = make_app(settings)
    device = model.embedding.device

    def retriever_for(catalog: Catalog) -> ScorerRetriever:
        return ScorerRetriever(make_scorer(device), catalog)

    def make_core(tables: StateTables) -> WorkerCore:
        return WorkerCore(model, tables, embed, model.embedding.dim, config.seed, request_ttl_s=settings.request_ttl_s,
                          retriever_for=retriever_for, embedding_version=embedding_version,
                          embed_text=getattr(embed, "text", None))

    return WorkerTopology.build(app, settings, config, make_core)


def serving_summary(model: SlatestreamConfig, source: str, embedding: str) -> str:
    """One log line: the configuration, scenarios with their policies, the embedding and device."""
    scenarios = ", ".join(f"{name}: {scenario.policy.name}" for name, scenario in model.scenarios.items())
    return (f"serving configuration {source}: scenarios {{{scenarios}}}, fallback {model.fallback_scenario}, "
            f"{model.engine.n_draws} draws; item embedding {embedding}")


def run_worker(settings: StreamSettings, model: SlatestreamConfig, config: WorkerConfig, encoder: Encoder,
               loglevel: str = "info", source: str = "defaults") -> None:
    """Check the broker, create the topics if needed, then run one worker until SIGTERM/SIGINT.
    Broker outages are logged as one line each (streams.outages), not as a line per retry.

    Faust's internal topics are created here too, before Faust starts: when Faust creates
    them itself, a topic made a moment before the group's first assignment can be missing
    from the consumer's metadata ("Ignoring missing topic"), and the worker then waits for
    its partitions until the next metadata refresh (minutes).
    """
    startup_log = StartupLog(loglevel)  # INFO lines before Faust sets up logging would be lost
    if (warning := checksum_warning()) is not None:
        log.warning("%s", warning)
    preflight(settings)
    ensure_topics(settings)
    ensure_control_topic(settings)
    create_topics(settings, internal_topic_specs(settings))
    embed = WorkerEmbedding(settings, encoder, model.embedding.dim, model.embedding.projection_items,
                            cache_dir=settings.store_dir / "embedding-cache")
    log.info("%s", serving_summary(model, source, embed.description))
    topology = build_worker(settings, model, config, embed, lambda: embed.version)
    if model.shadows:  # shadow policies publish a live leaderboard (streams/worker/leaderboard.py)
        ensure_leaderboard_topic(settings)
        add_leaderboard(topology, settings)
    startup_log.replay_when_running(topology.app)
    metrics, health = observe(topology, embed.device)
    if settings.metrics_port:
        try:
            service = WorkerService(health, metrics.registry, settings.metrics_port, settings.metrics_host).start()
            log.info("metrics and health on http://%s:%d (/metrics, /healthz, /readyz, /status)",
                     settings.metrics_host, service.port)
        except OSError as error:
            log.error("metrics and health endpoints NOT served: port %d: %s (set SLATESTREAM_METRICS_PORT)",
                      settings.metrics_port, error)
    quiet_outages(settings)  # after every Kafka client module is imported: their loggers exist
    worker = faust.Worker(topology.app, loglevel=loglevel, quiet=True)
    # Faust's terminal spinner sets the root logger to DEBUG when loglevel >= WARNING, and every
    # aiokafka debug call (one per produced record) then builds a log record: ~10 % of a worker.
    worker.spinner = None
    worker.execute_from_commandline()
