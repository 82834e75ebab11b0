"""What bench/worker_throughput.py waits on between its phases, reading the broker as little as
it can while a worker's window runs: the worker's log (its counts), the slates topic's end, and
every partition's population state in the state changelog."""

from __future__ import annotations

import time
from collections.abc import Iterable

from online.events import Click, Impression, Item, RankRequest
from slatestream.snapshot_freshness import logged_populations
from streams.settings import StreamSettings
from streams.state_changelog import topic_end_offsets
from streams.testing import WorkerProcess, publish
from streams.topics import TopicNames


def wait_received(worker: WorkerProcess, n: int, deadline: float) -> None:
    """Block until the worker's periodic counts line (every 5 s) has taken `n` records, reading
    its log file only: a broker read in a loop here (a consumer each time) would take CPU from
    the worker and the broker on a 2-core machine while the worker's window runs, which the
    quix peer's window does not share. TimeoutError after `deadline` (time.monotonic())."""
    while worker.counts().get("received", 0) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the worker took {worker.counts().get('received', 0):,} of {n:,} records")
        time.sleep(0.5)


def publish_timed(settings: StreamSettings, events: Iterable[Item | RankRequest | Impression | Click]) -> float:
    """Publish events (`streams.testing.publish`); the seconds it took."""
    started = time.perf_counter()
    publish(settings, events)
    return time.perf_counter() - started


def feedback_targets(settings: StreamSettings) -> dict[int, dict[str, int]]:
    """Per partition, the offsets of the last impression and click now in their topics: what its
    population state holds once every published record is learned."""
    names = TopicNames.from_settings(settings)
    last = {kind: topic_end_offsets(settings, topic)
            for kind, topic in (("impressions", names.impressions), ("clicks", names.clicks))}
    return {p: {kind: ends[p] - 1 for kind, ends in last.items() if ends.get(p, 0) > 0}
            for p in range(settings.partitions)}


def wait_learned(settings: StreamSettings, target: dict[int, dict[str, int]], deadline: float) -> tuple[float, float]:
    """Block until every partition's population state in the state changelog holds `target`
    (`feedback_targets`); (unix s when the read that first found it began, when it ended).
    TimeoutError after `deadline` (time.monotonic())."""
    while True:
        read_from = time.time()
        now = logged_populations(settings, range(settings.partitions), ("linear_ts",))
        seen_at = time.time()
        if all(now.get(p, {}).get("linear_ts", {}) == target[p] for p in target):
            return read_from, seen_at
        if time.monotonic() > deadline:
            raise TimeoutError("the worker did not learn every record")
        time.sleep(0.5)


def wait_slates(settings: StreamSettings, n: int, timeout_s: float) -> float:
    """Block until the slates topic holds `n` records; the seconds it took (TimeoutError after
    `timeout_s`)."""
    names = TopicNames.from_settings(settings)
    start = time.monotonic()
    while sum(topic_end_offsets(settings, names.slates).values()) < n:
        if time.monotonic() - start > timeout_s:
            raise TimeoutError("the worker did not rank every request")
        time.sleep(0.5)
    return time.monotonic() - start
