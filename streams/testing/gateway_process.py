"""A `slatestream gateway` subprocess for tests and benchmarks: start on a free port, wait, stop.

    with GatewayProcess(settings, log_path) as gateway:
        gateway.wait_ready()
        httpx.post(f"{gateway.url}/v1/rank", json={"user_id": "u1"})
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from streams.settings import StreamSettings
from streams.testing.worker_process import die_with_parent, worker_env


def free_port() -> int:
    """A TCP port nothing listens on at the moment of the call (loopback)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class GatewayProcess:
    """One gateway subprocess (python -m slatestream gateway --port PORT ARGS) on 127.0.0.1."""

    def __init__(self, settings: StreamSettings, log_path: Path, args: tuple[str, ...] = (),
                 port: int | None = None) -> None:
        self.settings = settings
        self.log_path = log_path
        self.args = args
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> GatewayProcess:
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "slatestream", "gateway", "--port", str(self.port), *self.args],
                env=worker_env(self.settings, self.log_path.parent / "gateway-store"), stdout=out,
                stderr=subprocess.STDOUT, preexec_fn=die_with_parent,  # only a prctl call: safe between fork and exec
            )
        return self

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Block until GET /healthz answers 200; RuntimeError with the log tail otherwise."""
        assert self.process is not None, "start() first"
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.process.returncode}:\n{self.log_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as answer:  # noqa: S310 - loopback
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gateway not ready within {timeout_s:g} s:\n{self.log_text()[-4000:]}")
            time.sleep(0.2)

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM, SIGKILL after timeout_s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout_s)

    def __enter__(self) -> GatewayProcess:
        return self.start() if self.process is None else self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()
