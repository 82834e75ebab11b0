"""`slatestream worker`'s runtime options reach the WorkerConfig it runs with."""

from typing import Any

import pytest
from click.testing import CliRunner

import streams.worker.preflight
import streams.worker.run
from slatestream.cli import main
from streams.worker.config import WorkerConfig


@pytest.fixture()
def started(monkeypatch: pytest.MonkeyPatch) -> list[WorkerConfig]:
    """The WorkerConfigs `run_worker` was called with (no broker, no worker started)."""
    calls: list[WorkerConfig] = []
    monkeypatch.delenv("SLATESTREAM_CONFIG", raising=False)
    monkeypatch.setattr(streams.worker.preflight, "preflight", lambda settings: None)

    def run_worker(settings: Any, model: Any, runtime: WorkerConfig, *rest: Any) -> None:
        calls.append(runtime)

    monkeypatch.setattr(streams.worker.run, "run_worker", run_worker)
    return calls


def test_the_request_group_time_is_given_in_milliseconds(started: list[WorkerConfig]) -> None:
    result = CliRunner().invoke(main, ["worker", "--encoder", "hashing", "--request-group-ms", "2.5",
                                       "--batch-size", "100", "--request-batch-size", "16"])
    assert result.exit_code == 0, result.output
    [runtime] = started
    assert runtime.request_group_s == pytest.approx(0.0025) and runtime.batch_size == 100
    assert runtime.request_batch_size == 16


def test_requests_first_options_reach_the_worker_config(started: list[WorkerConfig]) -> None:
    assert CliRunner().invoke(main, ["worker", "--encoder", "hashing"]).exit_code == 0
    assert (started[0].serving_piece_records, started[0].requests_first_wait_s) == (1_000, pytest.approx(0.1))
    assert (started[0].serving_window_s, started[0].batch_size) == (pytest.approx(5.0), 32_000)
    result = CliRunner().invoke(main, ["worker", "--encoder", "hashing", "--serving-piece-records", "4000",
                                       "--requests-first-ms", "0", "--serving-window-ms", "250"])
    assert result.exit_code == 0, result.output
    assert (started[1].serving_piece_records, started[1].requests_first_wait_s) == (4_000, 0.0)
    assert started[1].serving_window_s == pytest.approx(0.25)
    refused = CliRunner().invoke(main, ["worker", "--encoder", "hashing", "--serving-piece-records", "0"])
    assert refused.exit_code == 2 and len(started) == 2


def test_the_default_groups_five_milliseconds_and_a_negative_time_is_refused(started: list[WorkerConfig]) -> None:
    assert CliRunner().invoke(main, ["worker", "--encoder", "hashing"]).exit_code == 0
    assert started[0].request_group_s == pytest.approx(0.005)
    refused = CliRunner().invoke(main, ["worker", "--encoder", "hashing", "--request-group-ms", "-1"])
    assert refused.exit_code == 2 and "--request-group-ms" in refused.output and len(started) == 1


def test_the_request_list_size_defaults_to_the_configs_and_zero_is_refused(started: list[WorkerConfig]) -> None:
    assert CliRunner().invoke(main, ["worker", "--encoder", "hashing"]).exit_code == 0
    assert started[0].request_batch_size == WorkerConfig.request_batch_size == 64
    refused = CliRunner().invoke(main, ["worker", "--encoder", "hashing", "--request-batch-size", "0"])
    assert refused.exit_code == 2 and "--request-batch-size" in refused.output and len(started) == 1


def test_the_flush_interval_is_given_in_milliseconds_defaults_to_the_configs_and_refuses_negatives(
        started: list[WorkerConfig]) -> None:
    assert CliRunner().invoke(main, ["worker", "--encoder", "hashing"]).exit_code == 0
    assert started[0].flush_interval_s == pytest.approx(WorkerConfig.flush_interval_s) == 0.5
    assert CliRunner().invoke(main, ["worker", "--encoder", "hashing", "--flush-interval-ms", "2000"]).exit_code == 0
    assert started[1].flush_interval_s == pytest.approx(2.0)
    refused = CliRunner().invoke(main, ["worker", "--encoder", "hashing", "--flush-interval-ms", "-1"])
    assert refused.exit_code == 2 and "--flush-interval-ms" in refused.output and len(started) == 2


def test_the_young_generation_threshold_defaults_to_the_configs_and_zero_is_refused(
        started: list[WorkerConfig]) -> None:
    assert CliRunner().invoke(main, ["worker", "--encoder", "hashing"]).exit_code == 0
    assert started[0].gc_young_threshold == WorkerConfig.gc_young_threshold == 50_000
    assert CliRunner().invoke(main, ["worker", "--encoder", "hashing", "--gc-young-threshold", "700"]).exit_code == 0
    assert started[1].gc_young_threshold == 700
    refused = CliRunner().invoke(main, ["worker", "--encoder", "hashing", "--gc-young-threshold", "0"])
    assert refused.exit_code == 2 and "--gc-young-threshold" in refused.output and len(started) == 2
