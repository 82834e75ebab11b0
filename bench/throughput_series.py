"""Issue 23's throughput goals judged over a series of runs of bench/worker_throughput.py.

Each run is a fresh process of that bench with the arguments given after `--`; it writes its
figures as JSON (`--result-json`), and this script prints a table of the runs and three
verdicts: the median of the runs' worker / quix-streams ratios (goal >= PEER_GOAL), the runs'
worker rates within SPREAD_GOAL of each other (max / min), and each run's worker at least
IN_PROCESS_GOAL of the in-process learning of the same records in its own groups (the bench's
"the same in the worker's partition groups" line). The runs' full output is kept in a folder
(printed), one log a run.

    OMP_NUM_THREADS=1 .venv/bin/python bench/throughput_series.py --runs 5 -- --no-floors \\
        --peer at-least-once --broker-dir /dev/shm --store-dir /dev/shm --requests 70000 --users 4700

A run takes ~2 min with those arguments (the broker's start, the ranking phase, the baselines
and the peer included).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

from bench.command_line import command_line

BENCH = Path(__file__).resolve().parent / "worker_throughput.py"
PEER_GOAL = 1.5
"""Issue 23: the worker's feedback throughput at least this multiple of the quix-streams peer's
(median of the runs; bench.worker_baselines.learning_budget reads it too)."""
SPREAD_GOAL = 1.2
"""The runs' worker rates within 20 % of each other: max / min at most this."""
IN_PROCESS_GOAL = 0.8
"""Each run's worker at least this multiple of its in-process learning in the same groups."""
PEER = "at-least-once"
"""The peer's guarantee the ratio is taken against when a run measured several."""


class Verdicts(NamedTuple):
    """A series judged: the median worker / quix ratio (None without a peer), the runs' max / min
    worker rate, how many runs had the worker at least IN_PROCESS_GOAL of its in-process rate, and
    each goal met or not (None: not measured)."""

    median_ratio: float | None
    spread: float
    in_process_runs: int
    runs: int
    ratio_met: bool | None
    spread_met: bool
    in_process_met: bool


def write_result(path: Path, **figures: Any) -> None:
    """One run's figures as JSON (rates in events or records a second, times in seconds)."""
    path.write_text(json.dumps(figures, indent=1, sort_keys=True))


def read_result(path: Path) -> dict[str, Any]:
    figures: dict[str, Any] = json.loads(path.read_text())
    return figures


def peer_rate(result: dict[str, Any]) -> float | None:
    """The run's peer records/s (`PEER` if it ran, else the first measured); None without a peer."""
    peers: dict[str, float] = result.get("peer_records_per_s") or {}
    return float(peers.get(PEER, next(iter(peers.values())))) if peers else None


def peer_ratio(result: dict[str, Any]) -> float | None:
    """The run's worker rate over its peer's (`peer_rate`); None without a peer."""
    rate = peer_rate(result)
    return None if rate is None else float(result["worker_events_per_s"]) / rate


def judge(results: list[dict[str, Any]]) -> Verdicts:
    """The three goals over a series' results (at least one run)."""
    if not results:
        raise ValueError("a series needs at least one run")
    rates = [float(result["worker_events_per_s"]) for result in results]
    ratios = [peer_ratio(result) for result in results]
    measured = [ratio for ratio in ratios if ratio is not None]
    median_ratio = statistics.median(measured) if len(measured) == len(results) else None
    spread = max(rates) / min(rates)
    in_process = sum(float(result["worker_over_in_process"]) >= IN_PROCESS_GOAL for result in results)
    return Verdicts(median_ratio, spread, in_process, len(results),
                    None if median_ratio is None else median_ratio >= PEER_GOAL,
                    spread <= SPREAD_GOAL, in_process == len(results))


def table(results: list[dict[str, Any]]) -> str:
    """The runs as a Markdown table, one row each."""
    lines = ["| run | started (UTC) | worker events/s | peer records/s | worker / quix | worker / in-process "
             "(its groups) | learn calls, wall (CPU) s | outside them (s) |", "|---|---|---|---|---|---|---|---|"]
    for number, result in enumerate(results, 1):
        ratio, rate = peer_ratio(result), peer_rate(result)
        peer = "-" if rate is None else f"{rate:,.0f}"
        lines.append(f"| {number} | {result['started_at']} | {result['worker_events_per_s']:,.0f} | {peer} | "
                     f"{'-' if ratio is None else f'{ratio:.2f}'} | {result['worker_over_in_process']:.2f} | "
                     f"{result['learn_wall_s']:.2f} ({result['learn_cpu_s']:.2f}) | {result['outside_s']:.2f} |")
    return "\n".join(lines)


def verdict_lines(verdicts: Verdicts) -> list[str]:
    """The verdicts in words, one line a goal."""
    def word(met: bool | None) -> str:
        return "not measured (no peer)" if met is None else ("met" if met else "NOT met")

    ratio = "-" if verdicts.median_ratio is None else f"{verdicts.median_ratio:.2f}"
    return [f"worker / quix median of {verdicts.runs}: {ratio} (goal >= {PEER_GOAL}): {word(verdicts.ratio_met)}",
            f"worker rates max / min: {verdicts.spread:.2f} (goal <= {SPREAD_GOAL}): {word(verdicts.spread_met)}",
            f"worker >= {IN_PROCESS_GOAL} of in-process in its groups: {verdicts.in_process_runs} of "
            f"{verdicts.runs} runs: {word(verdicts.in_process_met)}"]


def run_once(bench_args: list[str], result: Path, log: Path) -> dict[str, Any]:
    """One fresh run of the throughput bench, its output to `log`; its figures."""
    with log.open("w") as out:
        subprocess.run([sys.executable, str(BENCH), *bench_args, "--result-json", str(result)], stdout=out,
                       stderr=subprocess.STDOUT, check=True)
    return read_result(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--logs", type=Path, default=None, help="keep the runs' logs and results here "
                        "(default: a new temporary folder)")
    parser.add_argument("bench_args", nargs=argparse.REMAINDER, help="after --: bench/worker_throughput.py's")
    args = parser.parse_args()
    bench_args = args.bench_args[1:] if args.bench_args[:1] == ["--"] else args.bench_args
    logs = args.logs or Path(tempfile.mkdtemp(prefix="throughput-series-"))
    logs.mkdir(parents=True, exist_ok=True)
    print(f"{args.runs} runs of bench/worker_throughput.py {' '.join(bench_args)}; logs in {logs}", flush=True)
    results = []
    for number in range(1, args.runs + 1):
        result = run_once(bench_args, logs / f"run{number}.json", logs / f"run{number}.log")
        ratio = peer_ratio(result)
        print(f"run {number}: worker {result['worker_events_per_s']:,.0f} events/s, worker / quix "
              f"{'-' if ratio is None else f'{ratio:.2f}'}, worker / in-process "
              f"{result['worker_over_in_process']:.2f}", flush=True)
        results.append(result)
    print(table(results))
    print("\n".join(verdict_lines(judge(results))))
    print(command_line("bench/throughput_series.py"))


if __name__ == "__main__":
    main()
