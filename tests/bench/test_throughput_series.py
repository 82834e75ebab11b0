"""bench/throughput_series.py: issue 23's verdicts over a series' results, its table, and a run's
result file as bench/worker_throughput.py writes it."""

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.throughput_series import (
    BENCH,
    PEER,
    Verdicts,
    judge,
    peer_ratio,
    read_result,
    table,
    verdict_lines,
    write_result,
)


def _result(worker: float, peer: float | None, in_process: float) -> dict[str, Any]:
    return {"started_at": "2026-12-07 20:53", "mode": "cold", "events": 105_058, "worker_events_per_s": worker,
            "worker_over_in_process": in_process, "in_process_groups_events_per_s": worker / in_process,
            "learn_wall_s": 1.2, "learn_cpu_s": 1.15, "outside_s": 0.3,
            "peer_records_per_s": {} if peer is None else {PEER: peer}}


# the first quiet series of 2026-12-07 (docs/worker.md, "Two quiet stretches")
FIRST_SERIES = [_result(71_106, 54_874, 1.02), _result(69_585, 54_423, 0.96), _result(64_744, 40_208, 0.95),
                _result(66_638, 51_512, 1.05), _result(68_598, 56_688, 0.98)]


def test_a_series_is_judged_against_each_goal() -> None:
    verdicts = judge(FIRST_SERIES)
    assert verdicts.median_ratio == pytest.approx(66_638 / 51_512)  # 1.29: the third of 1.21, 1.28, 1.29, 1.30, 1.61
    assert verdicts.spread == pytest.approx(71_106 / 64_744)
    assert (verdicts.ratio_met, verdicts.spread_met, verdicts.in_process_met) == (False, True, True)
    assert (verdicts.in_process_runs, verdicts.runs) == (5, 5)


def test_one_slow_run_fails_the_spread_and_the_in_process_goal_but_not_the_ratio() -> None:
    fast = [_result(90_000, 55_000, 1.0)] * 4
    verdicts = judge([*fast, _result(70_000, 45_000, 0.79)])
    assert verdicts.ratio_met is True and verdicts.median_ratio == pytest.approx(90_000 / 55_000)
    assert verdicts.spread_met is False and verdicts.in_process_runs == 4 and verdicts.in_process_met is False


def test_without_a_peer_the_ratio_is_not_measured() -> None:
    verdicts = judge([_result(70_000, None, 1.0), _result(71_000, 50_000, 1.0)])
    assert verdicts.median_ratio is None and verdicts.ratio_met is None
    assert "not measured (no peer)" in verdict_lines(verdicts)[0]
    with pytest.raises(ValueError):
        judge([])


def test_the_ratio_is_taken_against_at_least_once_when_both_guarantees_ran() -> None:
    both = {**_result(60_000, None, 1.0), "peer_records_per_s": {"exactly-once": 30_000.0, PEER: 40_000.0}}
    assert peer_ratio(both) == pytest.approx(1.5)
    only = {**_result(60_000, None, 1.0), "peer_records_per_s": {"exactly-once": 30_000.0}}
    assert peer_ratio(only) == pytest.approx(2.0)


def test_the_table_has_a_row_a_run_and_the_verdicts_a_line_a_goal() -> None:
    rows = table(FIRST_SERIES).splitlines()
    assert len(rows) == 2 + len(FIRST_SERIES)
    assert "| 3 | 2026-12-07 20:53 | 64,744 | 40,208 | 1.61 | 0.95 | 1.20 (1.15) | 0.30 |" in rows
    lines = verdict_lines(Verdicts(1.29, 1.10, 5, 5, False, True, True))
    assert [line.rsplit(": ", 1)[1] for line in lines] == ["NOT met", "met", "met"]


def test_a_result_file_reads_back_as_written(tmp_path: Path) -> None:
    path = tmp_path / "run1.json"
    write_result(path, **FIRST_SERIES[0])
    assert read_result(path) == FIRST_SERIES[0]


def test_the_throughput_bench_takes_the_result_option() -> None:
    """The series passes `--result-json` to the bench: the bench's own parser must offer it."""
    shown = subprocess.run([sys.executable, str(BENCH), "--help"], capture_output=True, text=True, check=True)
    assert "--result-json PATH" in shown.stdout
