"""A `slatestream gateway` subprocess for tests and benchmarks: start on a free port, wait, stop.

    with GatewayProcess(settings, log_path) as gateway:
        gateway.wait_ready()
        httpx.post(f"{gateway.url}/v1/rank", json={"user_id": "u1"})
"""

from __future__ import annotations

import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from streams.settings import StreamSettings
from streams.testing.child_process import ChildProcess
from streams.testing.worker_process import worker_env


def free_port() -> int:
    """A TCP port nothing listens on at the moment of the call (loopback)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class GatewayProcess(ChildProcess):
    """One gateway subprocess (python -m slatestream gateway --port PORT ARGS) on 127.0.0.1."""

    def __init__(self, settings: StreamSettings, log_path: Path, args: tuple[str, ...] = (),
                 port: int | None = None) -> None:
        super().__init__(log_path)
        self.settings = settings
        self.args = args
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> GatewayProcess:
        self._spawn([sys.executable, "-m", "slatestream", "gateway", "--port", str(self.port), *self.args],
                    worker_env(self.settings, self.log_path.parent / "gateway-store"))
        return self

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
        super().stop(timeout_s)
