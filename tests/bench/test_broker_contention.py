"""bench/broker_contention.py's arithmetic, its producer script and its one-CPU refusal (the bench
itself needs two CPUs and a broker: run it by hand, docs/worker.md)."""

from __future__ import annotations

import os

import pytest

from bench.broker_contention import PRODUCER, learn_beside_busy_broker, ratios
from bench.worker_baselines import rank_in_process
from streams.testing import make_workload


def test_the_ratios_are_loaded_over_idle_pair_by_pair_with_the_upper_median() -> None:
    pairs, median = ratios([100.0, 80.0, 50.0], [50.0, 60.0, 50.0])
    assert pairs == [0.5, 0.75, 1.0] and median == 0.75
    assert ratios([10.0, 10.0], [5.0, 20.0]) == ([0.5, 2.0], 2.0)
    with pytest.raises(ValueError):
        ratios([1.0], [1.0, 2.0])


def test_the_producer_script_compiles() -> None:
    compile(PRODUCER, "<producer>", "exec")


def test_learning_beside_a_busy_broker_refuses_one_cpu() -> None:
    """On one CPU there is no other CPU for the broker: a ValueError before any broker is touched
    (the pid and address here belong to nothing)."""
    workload = make_workload(n_users=5, n_items=10, n_requests=20, shown=2, click_rate=0.5, seed=0)
    ranked = rank_in_process(workload, 2)
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cpus)})
    try:
        with pytest.raises(ValueError, match="two CPUs"):
            learn_beside_busy_broker(ranked, 10, "127.0.0.1:1", broker_pid=2**22 + 1)
        assert os.sched_getaffinity(0) == {min(cpus)}
    finally:
        os.sched_setaffinity(0, cpus)
