"""Start a worker: create the topics, build the app and its topology, run until SIGTERM/SIGINT."""

from __future__ import annotations

from typing import Any

import faust

from online.config import SlatestreamConfig
from streams.control import ensure_control_topic
from streams.settings import StreamSettings
from streams.state_changelog import state_changelog_topic, worker_app_id
from streams.topics import create_topics, ensure_topics
from streams.worker.app import make_app
from streams.worker.config import WorkerConfig
from streams.worker.core import Embed, WorkerCore
from streams.worker.partition_state import StateTables
from streams.worker.topology import CATALOG_TABLE, WorkerTopology


def internal_topic_specs(settings: StreamSettings) -> dict[str, dict[str, Any]]:
    """The topics Faust would create at start-up: the tables' compacted changelogs (one
    partition per source partition) and the assignor's one-partition leader topic."""
    app_id = worker_app_id(settings)
    changelog = {"num_partitions": settings.partitions, "replication_factor": settings.replication_factor,
                 "configs": {"cleanup.policy": "compact"}}
    return {state_changelog_topic(settings): changelog, f"{app_id}-{CATALOG_TABLE}-changelog": changelog,
            f"{app_id}-__assignor-__leader": {"num_partitions": 1,
                                              "replication_factor": settings.replication_factor, "configs": {}}}


def build_worker(settings: StreamSettings, model: SlatestreamConfig, config: WorkerConfig, embed: Embed,
                 ) -> WorkerTopology:
    """The Faust app with the worker declared on it (topics must exist)."""
    app = make_app(settings)

    def make_core(tables: StateTables) -> WorkerCore:
        return WorkerCore(model, tables, embed, model.embedding.dim, config.seed, request_ttl_s=settings.request_ttl_s)

    return WorkerTopology.build(app, settings, config, make_core)


def run_worker(settings: StreamSettings, model: SlatestreamConfig, config: WorkerConfig, embed: Embed,
               loglevel: str = "info") -> None:
    """Create the topics if needed, then run one worker until SIGTERM/SIGINT.

    Faust's internal topics are created here too, before Faust starts: when Faust creates
    them itself, a topic made a moment before the group's first assignment can be missing
    from the consumer's metadata ("Ignoring missing topic"), and the worker then waits for
    its partitions until the next metadata refresh (minutes).
    """
    ensure_topics(settings)
    ensure_control_topic(settings)
    create_topics(settings, internal_topic_specs(settings))
    topology = build_worker(settings, model, config, embed)
    worker = faust.Worker(topology.app, loglevel=loglevel, quiet=True)
    # Faust's terminal spinner sets the root logger to DEBUG when loglevel >= WARNING, and every
    # aiokafka debug call (one per produced record) then builds a log record: ~10 % of a worker.
    worker.spinner = None
    worker.execute_from_commandline()
