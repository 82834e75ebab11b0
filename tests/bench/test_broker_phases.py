"""bench/broker_phases.py: the timed worker stopped and continued around its backlog's publishing, and its
progress read from its periodic report."""

from __future__ import annotations

import subprocess
import time

import pytest

from bench.broker_phases import GroupsLearned, LoggedProgress, paused, process_state, wait_committed, wait_state


def test_paused_stops_the_process_for_the_block_and_continues_it_after() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        with paused(child.pid, most_s=10.0):
            assert process_state(child.pid) == "T"
        assert process_state(child.pid) != "T"
        with pytest.raises(RuntimeError, match="stopped"), paused(child.pid, most_s=0.05):
            time.sleep(0.1)
        assert process_state(child.pid) != "T"  # continued even so
    finally:
        child.kill()
        child.wait()


def test_wait_state_gives_up_on_a_process_that_does_not_stop() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        with pytest.raises(TimeoutError, match="still in state"):
            wait_state(child.pid, stopped=True, most_s=0.05)
    finally:
        child.kill()
        child.wait()


class LoggingWorker:
    """A worker whose log holds the given lines."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def log_text(self) -> str:
        return "\n".join(self.lines)


def test_wait_committed_gives_the_report_that_says_the_records_were_committed() -> None:
    batches = ("batches requests: -; feedback: 3 batches, 9 partition groups learned in 1.50 s (1.25 s on the CPU), "
               "the largest of 26264 records")
    lane = "feedback lane: {} records taken from 100.000, {} committed, the last commit at 101.500 (unix s)"
    worker = LoggingWorker([batches, lane.format(60, 50)])
    with pytest.raises(TimeoutError, match="committed 60"):
        wait_committed(worker, 60, deadline=time.monotonic())  # type: ignore[arg-type]
    worker.lines += [batches, lane.format(60, 60)]
    assert wait_committed(worker, 60, deadline=time.monotonic()) == LoggedProgress(  # type: ignore[arg-type]
        (60, 100.0, 60, 101.5), GroupsLearned(9, 1.5, 1.25, 26_264))


def test_progress_since_an_earlier_report_counts_only_what_came_after_it() -> None:
    before = LoggedProgress((60, 100.0, 60, 101.5), GroupsLearned(4, 1.0, 0.75, 30_000))
    now = LoggedProgress((100, 100.0, 100, 110.0), GroupsLearned(10, 1.5, 1.25, 30_000))
    assert now.since(before) == LoggedProgress((40, 100.0, 40, 110.0), GroupsLearned(6, 0.5, 0.5, 30_000))
