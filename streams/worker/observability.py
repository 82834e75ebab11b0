"""The running worker seen from outside: its metrics and health, wired to a `WorkerTopology`."""

from __future__ import annotations

import logging
import time
from typing import Any

from streams.worker.metrics import WorkerMetrics, WorkerState
from streams.worker.service import Health
from streams.worker.topology import WorkerTopology

log = logging.getLogger("slatestream.worker")


def lag_of(topology: WorkerTopology) -> dict[tuple[str, int], int]:
    """{(topic, partition): records between the lanes' last fetched offset and the high watermark}."""
    lag: dict[tuple[str, int], int] = {}
    for lane, consumer in ((topology.request_lane, topology.request_fetcher),
                           (topology.feedback_lane, topology.app.consumer)):
        for tp, last in list(lane.last_offsets.items()):
            try:
                highwater = consumer.highwater(tp)
            except (KeyError, AssertionError, AttributeError):
                continue  # not assigned here any more
            if highwater is not None:
                lag[tp.topic, tp.partition] = max(0, int(highwater) - last - 1)
    return lag


def state_keys(topology: WorkerTopology) -> int:
    """RocksDB's estimate of the keys in the partitions this worker has open."""
    total = 0
    for part in list(topology.tables.open_partitions()):
        try:
            total += int(part.db.property_int_value("rocksdb.estimate-num-keys") or 0)
        except (AttributeError, ValueError):
            continue
    return total


def observe(topology: WorkerTopology, provider: str) -> tuple[WorkerMetrics, Health]:
    """Metrics and health of a worker: the paths report their latencies, the rest is read at
    each scrape; ready = partitions assigned, no rebalance or recovery running, catalog loaded."""
    core, app = topology.core, topology.app
    state = WorkerState(
        counts=lambda: core.counts, lag=lambda: lag_of(topology),
        last_commit_at=lambda: topology.commit.last_commit_at, state_keys=lambda: state_keys(topology),
        catalog_items=lambda: len(core.catalog), live=lambda: dict(core.live), provider=provider)
    metrics = WorkerMetrics(state)
    topology.requests.observe = metrics.observe_slate
    topology.feedback.observe = metrics.learn_batch_seconds.observe
    health = Health(checks={
        "partitions assigned": lambda: bool(topology.rebalancer.assigned),
        "no rebalance or recovery running": lambda: not (app.rebalancing or app.in_recovery),
        "catalog loaded": lambda: topology.catalog.caught_up,
    }, status=lambda: status_of(topology))
    state.ready = lambda: not health.missing()

    @app.timer(interval=1.0)
    async def heartbeat() -> None:
        health.beat()

    return metrics, health


def status_of(topology: WorkerTopology) -> dict[str, Any]:
    """A JSON-able snapshot: assignment, lag, the last commit, counts, catalog, embedding."""
    counts = topology.core.counts
    last = topology.commit.last_commit_at
    return {
        "assigned_partitions": sorted(topology.rebalancer.assigned),
        "lag": {f"{topic}[{partition}]": behind for (topic, partition), behind in sorted(lag_of(topology).items())},
        "last_commit_s_ago": None if last is None else round(time.time() - last, 3),
        "committed": topology.commit.committed,
        "counts": {key: value for key, value in vars(counts).items() if key != "by_topic"},
        "catalog_items": len(topology.core.catalog),
        "catalog_caught_up": topology.catalog.caught_up,
        "embedding_version": topology.core.embedding_version() if topology.core.embedding_version else "",
    }
