"""Publishing the live leaderboard of a worker's shadow policies to `<prefix>leaderboard` (the
topic, its record and reading it back: streams/leaderboard.py).

Every `leaderboard.publish_interval_s` seconds a worker with shadows (streams/worker/shadows.py)
scores the slates waiting, closes the rounds that are due, snapshots its windows on the event
loop, turns them into standings in a thread (the bootstraps) and sends one JSON record keyed by
its worker id.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from online.evaluation.assessment import ReliabilityRule
from streams.leaderboard import LEADERBOARD_VERSION, leaderboard_topic
from streams.settings import StreamSettings
from streams.worker.shadows import WorkerShadows, build_standings
from streams.worker.topology import WorkerTopology

log = logging.getLogger("slatestream.worker")


def worker_id(settings: StreamSettings) -> str:
    """What names this worker's records: its host and its store directory."""
    return f"{socket.gethostname()}:{settings.store_dir.resolve()}"


def leaderboard_record(shadows: WorkerShadows, worker: str, partitions: list[int],
                       scenarios: dict[str, Any]) -> dict[str, Any]:
    """The record of one publication (streams/leaderboard.py); scenarios: `build_standings`'s."""
    settings = shadows.config.leaderboard
    return {"version": LEADERBOARD_VERSION, "worker": worker, "time": datetime.now(UTC).isoformat(),
            "partitions": partitions, "shadows": asdict(shadows.counts),
            "settings": {"window_rounds": settings.window_rounds, "window_s": settings.window_s,
                         "close_after_s": settings.close_after_s, "n_bootstrap": settings.n_bootstrap,
                         "precision": settings.precision, "min_difference": settings.min_difference},
            "scenarios": scenarios}


def add_leaderboard(topology: WorkerTopology, settings: StreamSettings) -> None:
    """Declare the publishing timer on the worker's app (a worker without shadows: nothing)."""
    shadows = topology.core.shadows
    if shadows is None:
        return
    app = topology.app
    topic = app.topic(leaderboard_topic(settings), key_type=bytes, value_type=bytes, key_serializer="raw",
                      value_serializer="raw", partitions=1)
    key = worker_id(settings)
    config = shadows.config.leaderboard
    log.info("shadow policies %s (never served); leaderboard to %s every %g s as %s",
             ", ".join(f"{s.name}: {s.policy.name}" for s in shadows.config.shadows), leaderboard_topic(settings),
             config.publish_interval_s, key)

    @app.timer(interval=config.publish_interval_s)
    async def publish_leaderboard() -> None:
        try:
            shadows.tick()
            snapshot, versions = shadows.snapshot(), shadows.versions()
            loop = asyncio.get_running_loop()
            scenarios = await loop.run_in_executor(None, build_standings, snapshot, versions, config.n_bootstrap, 0,
                                                   ReliabilityRule(precision=config.precision), config.min_difference)
            record = leaderboard_record(shadows, key, sorted(topology.rebalancer.assigned), scenarios)
            await topic.send(key=key.encode(), value=json.dumps(record, allow_nan=False).encode())
        except Exception:  # the leaderboard never stops the worker
            log.exception("leaderboard: publishing failed (retried at the next interval)")
