"""bench/broker_contention.py's arithmetic and its producer script (the bench itself needs two CPUs
and a broker: run it by hand, docs/worker.md)."""

from __future__ import annotations

import pytest

from bench.broker_contention import PRODUCER, ratios


def test_the_ratios_are_loaded_over_idle_pair_by_pair_with_the_upper_median() -> None:
    pairs, median = ratios([100.0, 80.0, 50.0], [50.0, 60.0, 50.0])
    assert pairs == [0.5, 0.75, 1.0] and median == 0.75
    assert ratios([10.0, 10.0], [5.0, 20.0]) == ([0.5, 2.0], 2.0)
    with pytest.raises(ValueError):
        ratios([1.0], [1.0, 2.0])


def test_the_producer_script_compiles() -> None:
    compile(PRODUCER, "<producer>", "exec")
