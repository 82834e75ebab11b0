"""The collector settles as the worker wants it: heap frozen, young passes rarer, ratios kept."""

import gc
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from streams.worker.collector import YOUNG_THRESHOLD, CollectorClock, paused, settle
from streams.worker.config import WorkerConfig


@pytest.fixture()
def restored_collector() -> Iterator[None]:
    """The test process's collector as it was after each test (thresholds, nothing frozen)."""
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)
    gc.unfreeze()


def test_settling_freezes_what_exists_and_only_raises_the_young_threshold(restored_collector: None) -> None:
    gc.set_threshold(700, 7, 9)
    survivor: list[Any] = [object()]
    gc.unfreeze()
    settle(12_345)
    assert gc.get_threshold() == (12_345, 7, 9)
    assert gc.get_freeze_count() > 0
    assert all(item is not survivor for item in gc.get_objects())  # frozen: in no generation
    assert gc.get_count()[0] < 100  # the full collection just ran


def test_a_cycle_is_still_collected_once_the_young_threshold_is_reached(restored_collector: None) -> None:
    settle(1_000)
    collected: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "stop":
            collected.append(info["collected"])

    class Node:
        pass

    gc.callbacks.append(count)
    try:
        first, second = Node(), Node()
        first.other, second.other = second, first  # type: ignore[attr-defined]
        del first, second
        kept = [[] for _ in range(2_000)]  # net allocations past the threshold start a young pass
    finally:
        gc.callbacks.remove(count)
    assert len(kept) == 2_000 and sum(collected) >= 2  # the two nodes


def test_the_default_is_the_workers_and_a_threshold_below_one_is_refused() -> None:
    assert WorkerConfig().gc_young_threshold == YOUNG_THRESHOLD == 50_000
    with pytest.raises(ValueError, match="young_threshold"):
        settle(0)
    with pytest.raises(ValueError, match="gc_young_threshold"):
        WorkerConfig(gc_young_threshold=0)


def test_the_clock_counts_passes_by_generation_while_started_only() -> None:
    clock = CollectorClock()
    gc.collect(0)
    assert clock.passes == [0, 0, 0]  # not started
    clock.start()
    clock.start()  # once only
    try:
        gc.collect(0)
        gc.collect(2)
    finally:
        clock.stop()
    gc.collect(1)
    assert clock.passes == [1, 0, 1] and clock.seconds > 0.0
    assert str(clock).startswith("collector: 2 passes (1 young, 0 middle, 1 full) in ")


def test_paused_turns_the_collector_off_for_the_block_and_back_as_it_was() -> None:
    assert gc.isenabled()
    with paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), paused():
        raise RuntimeError("a learn call that fails")
    assert gc.isenabled()
    gc.disable()
    try:
        with paused():
            pass
        assert not gc.isenabled()  # left off, as it was
    finally:
        gc.enable()


def test_pauses_overlapping_across_threads_turn_the_collector_back_on_when_the_last_one_ends() -> None:
    """Thread A pauses, B pauses, A ends while B is still inside (the collector stays off), B ends
    (back on). A plain read-then-disable per block turns it back on under B's block here, and
    in another order (B reads "off" before A turns it on) leaves it off for good."""
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, bool] = {}

    def first() -> None:
        with paused():
            a_in.set()
            b_in.wait(10)
        seen["after a"] = gc.isenabled()
        a_out.set()

    def second() -> None:
        a_in.wait(10)
        with paused():
            b_in.set()
            a_out.wait(10)
            seen["b inside, a out"] = gc.isenabled()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert seen == {"after a": False, "b inside, a out": False} and gc.isenabled()
