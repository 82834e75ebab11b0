"""bench/worker_throughput.py's modes without a broker: `WorkerCore.learn` in this process
(`--learn-only RUNS`), without and with the heap tuning in fresh processes (`--heap both`), and
with the collector's young threshold at Python's default and at the worker's (`--collector both`)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

from bench.command_line import command_line
from bench.worker_baselines import HEAP, in_process_learn, rank_in_process
from slatestream.heap import SWITCH
from streams.worker.collector import PYTHON_YOUNG_THRESHOLD, YOUNG_THRESHOLD, CollectorClock
from streams.worker.core import WorkerCore

BENCH = Path(__file__).resolve().parent / "worker_throughput.py"
"""The bench whose --learn-only mode `learn_heap_pairs` runs in fresh processes."""


def learn_only(workload, runs: int) -> None:  # type: ignore[no-untyped-def]
    """`in_process_learn` `runs` times (4 partitions, batches of 2,000), each in CPU seconds, with
    the minor page faults of each timed learning (the process's own count)."""
    events = len(workload.feedback())
    ranked = rank_in_process(workload, 4)
    rates, faults, before = [], [], []

    def count_faults(core: WorkerCore) -> None:  # runs right before the timed learning
        before.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)

    for _ in range(runs):
        seconds = in_process_learn(ranked, 2_000, prepare=count_faults).cpu_s
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before[-1])
        rates.append(events / seconds)
    print(f"WorkerCore.learn in this process, {events:,} events, {len(workload.requests):,} requests, dict state, "
          f"batches of 2,000, heap tuning {HEAP}, per CPU second: " + ", ".join(f"{rate:,.0f}" for rate in rates)
          + f" (median {sorted(rates)[len(rates) // 2]:,.0f})")
    print("minor page faults while learning: " + ", ".join(f"{count:,}" for count in faults))
    print(command_line("bench/worker_throughput.py"))


def learn_heap_pairs(runs: int) -> None:
    """`runs` pairs of learn-only runs, each in a fresh process, without then with the heap
    tuning (slatestream/heap.py; the setting cannot be undone inside one process): the median
    of each and the pair-by-pair ratios."""
    rates: dict[str, list[float]] = {"off": [], "on": []}
    faults: dict[str, list[str]] = {"off": [], "on": []}
    arguments = [arg for arg in sys.argv[1:] if arg not in ("--heap", "both")]
    arguments[arguments.index("--learn-only") + 1] = "1"
    for _ in range(runs):
        for mode in ("off", "on"):
            done = subprocess.run([sys.executable, str(BENCH), *arguments], capture_output=True, text=True,
                                  check=True, env={**os.environ, SWITCH: mode})
            line = next(line for line in done.stdout.splitlines() if "per CPU second" in line)
            rates[mode].append(float(line.rsplit("(median ", 1)[1].rstrip(")").replace(",", "")))
            faults[mode].append(next(line for line in done.stdout.splitlines() if "page faults" in line)
                                .rsplit(": ", 1)[1])
    ratios = [on / off for off, on in zip(rates["off"], rates["on"], strict=True)]
    for mode, values in rates.items():
        print(f"heap tuning {mode}: " + ", ".join(f"{rate:,.0f}" for rate in values)
              + f" events per CPU second (median {sorted(values)[len(values) // 2]:,.0f}); minor page faults "
              + ", ".join(faults[mode]))
    print("on / off, pair by pair: " + ", ".join(f"{ratio:.2f}" for ratio in ratios)
          + f" (median {sorted(ratios)[len(ratios) // 2]:.2f})")
    print(command_line("bench/worker_throughput.py"))


def learn_collector_pairs(workload, runs: int, group: int | None) -> None:  # type: ignore[no-untyped-def]
    """`runs` pairs of `in_process_learn` in this process, the collector's young threshold
    Python's default (700) then the worker's (`YOUNG_THRESHOLD`), each with the CPU seconds and
    the collector's passes and seconds over the learning; the pair-by-pair ratios."""
    events = len(workload.feedback())
    ranked = rank_in_process(workload, 4)
    rates: dict[int, list[float]] = {PYTHON_YOUNG_THRESHOLD: [], YOUNG_THRESHOLD: []}
    for _ in range(runs):
        for threshold, values in rates.items():
            clock = CollectorClock()
            seconds = in_process_learn(ranked, 2_000, group=group, young_threshold=threshold, clock=clock).cpu_s
            values.append(events / seconds)
            print(f"young threshold {threshold:,}: {events / seconds:,.0f} events per CPU second, {clock}")
    grouping = "batches of 2,000" if group is None else f"groups of {group:,} records of one partition"
    for threshold, values in rates.items():
        print(f"WorkerCore.learn in this process, {events:,} events, {grouping}, young threshold {threshold:,}: "
              + ", ".join(f"{rate:,.0f}" for rate in values) + f" (median {sorted(values)[len(values) // 2]:,.0f})")
    ratios = [tuned / default for default, tuned in zip(*rates.values(), strict=True)]
    print(f"{YOUNG_THRESHOLD:,} / {PYTHON_YOUNG_THRESHOLD}, pair by pair: " + ", ".join(f"{r:.2f}" for r in ratios)
          + f" (median {sorted(ratios)[len(ratios) // 2]:.2f})")
    print(command_line("bench/worker_throughput.py"))
