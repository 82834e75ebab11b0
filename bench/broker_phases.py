"""What bench/worker_throughput.py waits on between its phases, reading the broker as little as
it can while a worker's window runs: the worker's log (its counts, its feedback lane's window and
its learn calls), the slates topic's end, and every partition's population state in the state
changelog; and `backlog_while_stopped` (with `paused`), which stops the timed worker while its backlog
is published and continues it: its window starts there."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import NamedTuple

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


def lane_window(log_lines: list[str]) -> tuple[int, float, int, float]:
    """(records taken, first list taken at, records committed, last commit at) from the
    worker's last "feedback lane:" log line (unix s)."""
    found = [line for line in log_lines if "feedback lane: " in line]
    if not found:
        raise RuntimeError("the worker logged no feedback lane window (batch lanes off?)")
    match = re.search(r"(\d+) records taken from ([\d.]+), (\d+) committed, the last commit at ([\d.]+)", found[-1])
    if match is None:
        raise RuntimeError(f"unexpected feedback lane line: {found[-1]}")
    return int(match[1]), float(match[2]), int(match[3]), float(match[4])


class GroupsLearned(NamedTuple):
    """The worker's partition groups (WorkerCore.learn calls): how many, the wall seconds in
    them, the CPU seconds of those, and the most records one of them held (over the worker's
    whole run)."""

    groups: int
    seconds: float
    cpu_s: float
    largest: int


def groups_learned(stats_line: str) -> GroupsLearned:
    """The worker's partition groups from its last "batches ..." log line ("feedback: N batches,
    ..., G partition groups learned in S s (C s on the CPU), the largest of R records")."""
    match = re.search(r"feedback: .*?(\d+) partition groups learned in ([\d.]+) s \(([\d.]+) s on the CPU\), "
                      r"the largest of (\d+) records", stats_line)
    if match is None:
        raise RuntimeError(f"the worker logged no partition groups: {stats_line}")
    return GroupsLearned(int(match[1]), float(match[2]), float(match[3]), int(match[4]))


class LoggedProgress(NamedTuple):
    """A worker's progress as its last periodic report logged it: its feedback lane's window
    (`lane_window`: taken, first taken at, committed, last commit at) and its learn calls."""

    window: tuple[int, float, int, float]
    learned: GroupsLearned

    def since(self, before: LoggedProgress) -> LoggedProgress:
        """The records taken and committed and the learn calls from `before` to this report (the
        window's ends and the largest learn call stay this report's: a maximum is not split)."""
        taken, first_at, committed, last_at = self.window
        now, then = self.learned, before.learned
        return LoggedProgress((taken - before.window[0], first_at, committed - before.window[2], last_at),
                              GroupsLearned(now.groups - then.groups, now.seconds - then.seconds,
                                            now.cpu_s - then.cpu_s, now.largest))


def logged_progress(log_lines: list[str]) -> LoggedProgress:
    """The worker's last periodic report: its feedback lane's window and its learn calls."""
    batch_lines = [line for line in log_lines if "batches " in line]
    return LoggedProgress(lane_window(log_lines), groups_learned(batch_lines[-1]))


def wait_committed(worker: WorkerProcess, n: int, deadline: float) -> LoggedProgress:
    """Block until the worker's periodic report (every 5 s, its log only) says its feedback lane
    committed `n` records; that report. TimeoutError after `deadline` (time.monotonic())."""
    while True:
        lines = worker.log_text().splitlines()
        if any("feedback lane: " in line for line in lines):
            progress = logged_progress(lines)
            if progress.window[2] >= n:
                return progress
        if time.monotonic() > deadline:
            raise TimeoutError(f"the worker's log does not say it committed {n:,} records")
        time.sleep(0.5)


def process_state(pid: int) -> str:
    """The process's state letter in /proc/PID/stat (Linux): T stopped, S sleeping, R running,
    D in uninterruptible sleep (a signal waits until it leaves it)."""
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]


def wait_state(pid: int, stopped: bool, most_s: float = 5.0) -> None:
    """Block until the process is stopped (state T), or no longer stopped: a signal reaches a
    process in uninterruptible sleep (D, e.g. reading its program's pages) only when it leaves
    it. TimeoutError after `most_s` seconds."""
    deadline = time.monotonic() + most_s
    while (process_state(pid) == "T") != stopped:
        if time.monotonic() > deadline:
            raise TimeoutError(f"process {pid} still in state {process_state(pid)} after {most_s} s")
        time.sleep(0.001)


@contextmanager
def paused(pid: int, most_s: float) -> Iterator[None]:
    """The process stopped (SIGSTOP) while the block runs and continued (SIGCONT) after it: the
    block starts once /proc says it stopped and the context exits once it says it runs again.
    RuntimeError after the block if it was stopped longer than `most_s` seconds (a worker's
    consumer group drops a member silent for its session timeout: a rebalance would follow)."""
    os.kill(pid, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        wait_state(pid, stopped=True)
        yield
    finally:
        os.kill(pid, signal.SIGCONT)
        wait_state(pid, stopped=False)
    if time.monotonic() - stopped > most_s:
        raise RuntimeError(f"the worker was stopped {time.monotonic() - stopped:.1f} s (at most {most_s:.1f} s): "
                           "its group may have dropped it")


SESSION_TIMEOUT_S = 30.0
"""The bench's broker session timeout: a worker's group drops a member silent this long."""
PAUSE_MOST_S = 20.0
"""The longest the timed worker may stay stopped while its backlog is published (publishing
105,058 records takes ~4.5 s here): below SESSION_TIMEOUT_S, after which its group would drop it."""
IDLE_BEFORE_PAUSE_S = 1.0
"""Seconds the timed worker runs idle before it is stopped: its partitions assigned (Faust logs
"Worker ready" once its recovery is done) and its consumer waiting on a fetch."""


def backlog_while_stopped(settings: StreamSettings, worker: WorkerProcess, learned_first: int,
                          timed: list[Impression | Click], deadline: float) -> tuple[LoggedProgress | None, float]:
    """Stop the running, idle worker (SIGSTOP), publish `timed`, continue it (SIGCONT): the
    window starts there, with the whole backlog in the broker, so the fetches of every record
    and their parsing in the worker (aiokafka's, in Python) are inside it, as the peer's
    fetching is inside its own. With `learned_first` (--steady), first wait until the worker's log
    says it committed that many records (published before it started). Returns (its logged progress
    before, or None; unix s when it was continued)."""
    before = wait_committed(worker, learned_first, deadline) if learned_first else None
    time.sleep(IDLE_BEFORE_PAUSE_S)
    assert worker.process is not None
    with paused(worker.process.pid, PAUSE_MOST_S):
        published_in = publish_timed(settings, timed)
    continued_at = time.time()
    after = f" after learning the first {learned_first:,} records (untimed)" if learned_first else ""
    print(f"the timed worker, idle{after}, was stopped while {len(timed):,} impressions+clicks were published "
          f"({published_in:.1f} s), then continued: the window starts there")
    return before, continued_at
