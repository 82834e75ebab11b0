"""bench/gpu_check.py: refuses at once without a GPU, keeps going past a check that cannot run or
breaks, and every code path runs with the CPU standing in for CUDA (--cpu-rehearsal)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import gpu_check
from encoders.device import cuda_available

SCRIPT = Path(gpu_check.__file__)


def run_script(*args: str, cwd: Path, timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout_s, check=False)


@pytest.mark.skipif(cuda_available(), reason="this machine has a usable CUDA GPU")
def test_without_a_gpu_it_exits_2_at_once_saying_so(tmp_path: Path) -> None:
    done = run_script(cwd=tmp_path, timeout_s=60)
    assert done.returncode == gpu_check.NO_GPU_EXIT == 2
    assert "no usable CUDA GPU" in done.stderr
    assert not (tmp_path / "gpu_check.json").exists()  # nothing measured, nothing written


def test_a_check_that_cannot_run_is_skipped_and_one_that_breaks_fails_while_the_others_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def cannot(sizes: gpu_check.Sizes, devices: gpu_check.Devices) -> dict:  # type: ignore[type-arg]
        raise gpu_check.Skip("no CUDAExecutionProvider here")

    def breaks(sizes: gpu_check.Sizes, devices: gpu_check.Devices) -> dict:  # type: ignore[type-arg]
        raise RuntimeError("boom")

    def lacks(sizes: gpu_check.Sizes, devices: gpu_check.Devices) -> dict:  # type: ignore[type-arg]
        raise ModuleNotFoundError("No module named 'pydantic'")

    def passes(sizes: gpu_check.Sizes, devices: gpu_check.Devices) -> dict:  # type: ignore[type-arg]
        return {"passed": True, "figure": 1.5}

    monkeypatch.setattr(gpu_check, "CHECKS", {"a": cannot, "b": breaks, "c": passes, "d": lacks})
    out = tmp_path / "figures.json"
    report: dict = {}  # type: ignore[type-arg]
    outcomes = gpu_check.run_checks(["a", "b", "c", "d"], gpu_check.Sizes(), gpu_check.Devices(), 100.0, out, report)
    assert outcomes == {"a": "skipped", "b": "FAILED", "c": "passed", "d": "skipped"}
    written = json.loads(out.read_text())
    assert written["a"]["skipped"] == "no CUDAExecutionProvider here"
    assert written["b"]["error"] == "RuntimeError: boom" and written["b"]["passed"] is False
    assert written["c"]["figure"] == 1.5
    assert "pydantic" in written["d"]["skipped"]


def test_checks_past_the_time_budget_are_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(sizes: gpu_check.Sizes, devices: gpu_check.Devices) -> dict:  # type: ignore[type-arg]
        return {"passed": True}

    monkeypatch.setattr(gpu_check, "CHECKS", {"a": slow, "b": slow})
    report: dict = {}  # type: ignore[type-arg]
    outcomes = gpu_check.run_checks(["a", "b"], gpu_check.Sizes(), gpu_check.Devices(), -1.0, tmp_path / "f.json",
                                    report)
    assert outcomes == {"a": "skipped", "b": "skipped"}
    assert "time budget" in report["a"]["skipped"]


@pytest.mark.slow
def test_the_cpu_rehearsal_runs_the_scorer_retrieval_and_rank_checks(tmp_path: Path) -> None:
    out = tmp_path / "rehearsal.json"
    done = run_script("--cpu-rehearsal", "--checks", "scorer_parity,retrieval,rank", "--json", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert report["rehearsal"] is True
    assert report["outcomes"] == {"scorer_parity": "passed", "retrieval": "passed", "rank": "passed"}
    assert report["scorer_parity"]["fp32"]["mean_overlap"] == 1.0
    assert report["rank"]["gpu"]["p50_ms"] > 0 and report["retrieval"]["numpy"]["single_qps"] > 0


@pytest.mark.onnx
@pytest.mark.slow
def test_the_cpu_rehearsal_runs_the_onnx_check_on_the_exported_model(tmp_path: Path) -> None:
    out = tmp_path / "rehearsal.json"
    done = run_script("--cpu-rehearsal", "--checks", "onnx_cuda", "--json", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert report["onnx_cuda"]["providers"][0] == "CPUExecutionProvider"
    assert report["onnx_cuda"]["min_cosine"] > 0.9999  # the same provider twice: the same vectors
