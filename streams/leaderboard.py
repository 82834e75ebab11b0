"""The leaderboard topic of the shadow policies, `<prefix>leaderboard`: its name, its creation and
reading the latest record of every worker (no Faust here: `slatestream leaderboard` reads it). The
worker's side, which publishes: streams/worker/leaderboard.py.

Record (version 1), one per worker, keyed by its worker id ("<host>:<store dir>"), the topic one
partition and compacted (the latest record of every worker is kept): {"version": 1, "worker",
"time": ISO 8601 UTC, "partitions": [assigned feedback partitions], "shadows": {"queued", "scored",
"dropped", "failed"}, "settings": {window and bootstrap}, "scenarios": {scenario: standings}}, the
standings being `online.evaluation.live.Standings.to_dict()` plus the window's counts (NaN as null).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from streams.settings import StreamSettings
from streams.state_changelog import read_changelog
from streams.topics import create_topics

log = logging.getLogger(__name__)
LEADERBOARD_VERSION = 1


def leaderboard_topic(settings: StreamSettings) -> str:
    """The leaderboard topic, "<prefix>leaderboard"."""
    return f"{settings.topic_prefix}leaderboard"


def ensure_leaderboard_topic(settings: StreamSettings) -> bool:
    """Create the leaderboard topic (one partition, compacted) if missing; True when created now."""
    spec = {"num_partitions": 1, "replication_factor": settings.replication_factor,
            "configs": {"cleanup.policy": "compact"}}
    return create_topics(settings, {leaderboard_topic(settings): spec})[leaderboard_topic(settings)]


def read_leaderboard(settings: StreamSettings, timeout_s: float = 30.0) -> list[dict[str, Any]]:
    """The latest record of every worker on the leaderboard topic, oldest first (none when the
    topic does not exist); records that do not parse are skipped with a warning."""
    entries = read_changelog(settings, leaderboard_topic(settings), timeout_s=timeout_s)
    records = []
    for entry in entries.values():
        if entry.value is None:
            continue
        try:
            record = json.loads(entry.value)
        except ValueError:
            log.warning("leaderboard: skipping a record that is not JSON at offset %d", entry.offset)
            continue
        if isinstance(record, dict) and record.get("version") == LEADERBOARD_VERSION:
            records.append(record)
    return sorted(records, key=lambda r: str(r.get("time", "")))
