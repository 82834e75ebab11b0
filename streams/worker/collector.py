"""The cyclic garbage collector, settled for the learning path once partitions are assigned.

Python starts a young-generation collection every 700 container allocations (net) and an older
one every 10 of those. The learning path allocates per event (decoded events, their lists and
dicts) and keeps per user (recent ids, cached states), so the passes keep walking live objects
on their way to the oldest generation: in `WorkerCore.learn` over the bench's 105,058 events
(groups of 6,566, as the worker learns them) 440 passes in 0.11-0.15 s at 700, 2 in ~0.015 s
at `YOUNG_THRESHOLD`, 1.08x the events per CPU second; in the worker through the broker 774-791
passes in 0.28-0.32 s a run against 3-4 in 0.04-0.05 s (docs/worker.md, "The collector's young
generation"; `bench/worker_throughput.py --learn-only 5 --collector both`).

Since 2026-12-07 every `WorkerCore.learn` call runs with the collector off (`paused`): inside a
call what it allocates stays alive until it returns, so passes there walked live objects only;
the threshold now spaces the passes between calls and on the rest of the worker (ranking, Faust).

`settle` runs a full collection, freezes what exists (Faust, modules, the catalog: kept out of
every later pass) and raises the young generation's threshold; the older generations keep
Python's ratios. Garbage in reference cycles then waits for at most `young_threshold`
allocations before it is found, as before it waited for 700: memory is not held longer than
that.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_THRESHOLD = 50_000
"""Net container allocations between young-generation collections, the worker's."""
PYTHON_YOUNG_THRESHOLD = 700
"""CPython's own (3.11), for comparisons (bench/worker_throughput.py --collector both)."""


def settle(young_threshold: int = YOUNG_THRESHOLD) -> None:
    """Collect everything, freeze what survives, and collect the young generation every
    `young_threshold` net allocations (>= 1; the older generations' thresholds unchanged)."""
    if young_threshold < 1:
        raise ValueError(f"young_threshold must be >= 1, got {young_threshold}")
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, oldest)


class CollectorClock:
    """Counts the collector's passes by generation and the wall seconds they took, from `start`
    (a `gc.callbacks` entry) to `stop`; the worker logs it with its batch counts."""

    def __init__(self) -> None:
        self.passes = [0, 0, 0]
        self.seconds = 0.0
        self._began = 0.0

    def _on_pass(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
            return
        self.seconds += time.perf_counter() - self._began
        self.passes[info["generation"]] += 1

    def start(self) -> None:
        if self._on_pass not in gc.callbacks:
            gc.callbacks.append(self._on_pass)

    def stop(self) -> None:
        if self._on_pass in gc.callbacks:
            gc.callbacks.remove(self._on_pass)

    def __str__(self) -> str:
        young, middle, full = self.passes
        return (f"collector: {young + middle + full} passes ({young} young, {middle} middle, {full} full) in "
                f"{self.seconds:.3f} s")


class _Pauses:
    """Blocks inside `paused`, counted across threads (the collector's switch is the process's):
    the first to enter turns the collector off, the last to leave turns it back on if it was."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0
        self.was_enabled = False

    def enter(self) -> None:
        with self.lock:
            if self.depth == 0:
                self.was_enabled = gc.isenabled()
                gc.disable()
            self.depth += 1

    def leave(self) -> None:
        with self.lock:
            self.depth -= 1
            if self.depth == 0 and self.was_enabled:
                gc.enable()


_PAUSES = _Pauses()


@contextmanager
def paused() -> Iterator[None]:
    """The collector off for the block, then as it was (blocks may nest and overlap across
    threads). A learn call keeps what it allocates alive until it returns (its decoded events,
    their rows and columns), so a young pass inside one walks up to `young_threshold` live
    objects and frees none of them (~9 ms a pass: 6 passes, ~4 % of the learning, over the
    throughput bench's four calls of ~26,000 records); after it, the next pass walks only what
    survived. Cycles made inside the block wait for its end."""
    _PAUSES.enter()
    try:
        yield
    finally:
        _PAUSES.leave()
