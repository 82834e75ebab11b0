"""A `slatestream worker` subprocess for tests and benchmarks: start, wait, read counts, kill.

    with WorkerProcess(settings, store_dir, log_path, args=("--dim", "16")) as worker:
        worker.wait_ready()
        ...
        worker.kill()          # SIGKILL, no shutdown: what a crash looks like

Settings travel as SLATESTREAM_* environment variables (the worker reads StreamSettings
from the environment); the log (stdout + stderr) goes to `log_path`.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

from streams.settings import StreamSettings
from streams.testing.child_process import ChildProcess

READY = b"Worker ready"


def worker_env(settings: StreamSettings, store_dir: Path, metrics_port: int = 0) -> dict[str, str]:
    """The environment that makes `slatestream worker` use these settings and store dir (its
    HTTP endpoints off unless `metrics_port` names one: several test workers share a host)."""
    return {
        **os.environ,
        "SLATESTREAM_BROKER_URL": settings.broker_url,
        "SLATESTREAM_TOPIC_PREFIX": settings.topic_prefix,
        "SLATESTREAM_PARTITIONS": str(settings.partitions),
        "SLATESTREAM_REPLICATION_FACTOR": str(settings.replication_factor),
        "SLATESTREAM_APP_ID": settings.app_id,
        "SLATESTREAM_STORE_DIR": str(store_dir),
        "SLATESTREAM_BROKER_SESSION_TIMEOUT_S": str(settings.broker_session_timeout_s),
        "SLATESTREAM_METRICS_PORT": str(metrics_port),
    }


class WorkerProcess(ChildProcess):
    """One worker subprocess (python -m slatestream worker ARGS); with `profile_path`, run
    under cProfile, which writes its stats there when the worker stops (not on kill)."""

    def __init__(self, settings: StreamSettings, store_dir: Path, log_path: Path,
                 args: tuple[str, ...] = (), profile_path: Path | None = None, metrics_port: int = 0) -> None:
        self.settings = settings
        self.metrics_port = metrics_port
        self.profile_path = profile_path
        self.store_dir = store_dir
        self.args = args
        super().__init__(log_path)
        self._ready_before = 0

    def start(self) -> WorkerProcess:
        self._ready_before = self.log_path.read_bytes().count(READY) if self.log_path.exists() else 0
        profiler = () if self.profile_path is None else ("-m", "cProfile", "-o", str(self.profile_path))
        self._spawn([sys.executable, *profiler, "-m", "slatestream", "worker", *self.args],
                    worker_env(self.settings, self.store_dir, self.metrics_port))
        return self

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Block until this run logged "Worker ready"; RuntimeError with the log tail otherwise."""
        assert self.process is not None, "start() first"
        deadline = time.monotonic() + timeout_s
        while self.log_path.read_bytes().count(READY) <= self._ready_before:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}:\n{self.log_text()[-4000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker not ready within {timeout_s:g} s:\n{self.log_text()[-4000:]}")
            time.sleep(0.3)

    def collector(self) -> str | None:
        """The last count of its collector's passes the worker logged ("N passes (Y young, M
        middle, F full) in S s since start", streams/worker/collector.py); None when none yet."""
        lines = [line for line in self.log_text().splitlines() if "collector: " in line]
        return lines[-1].split("collector: ", 1)[1].strip() if lines else None

    def counts(self) -> dict[str, int]:
        """The last `counts Counts(...)` line the worker logged ({} when none yet)."""
        lines = [line for line in self.log_text().splitlines() if "counts Counts(" in line]
        if not lines:
            return {}
        return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", lines[-1].split("by_reason")[0])}
