"""The worker's HTTP endpoints, on `SLATESTREAM_METRICS_PORT` (9464 by default; 0 = off):

    GET /metrics   Prometheus exposition of the worker's metrics (streams.worker.metrics)
    GET /healthz   200 while the worker's event loop answers (a heartbeat younger than
                   `stale_after_s`), else 503: the process is alive but stuck
    GET /readyz    200 once partitions are assigned, the catalog is loaded and recovery is done,
                   else 503 with what is missing
    GET /status    JSON: assignment, lag, last commit, counts (what `slatestream status` prints)

A daemon thread serves them (the standard library's ThreadingHTTPServer): a scrape never waits
for the event loop, and the event loop never waits for a scrape.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


@dataclass
class Health:
    """What the endpoints answer from: a heartbeat the event loop beats, readiness checks, status.

    checks: name -> callable, True when that part is ready (e.g. "partitions assigned").
    status: JSON-able snapshot of the worker.
    """

    checks: dict[str, Callable[[], bool]] = field(default_factory=dict)
    status: Callable[[], dict[str, Any]] = dict
    stale_after_s: float = 30.0
    beat_at: float = field(default_factory=time.monotonic)

    def beat(self) -> None:
        """Called by the event loop (a timer): it still runs."""
        self.beat_at = time.monotonic()

    def alive(self) -> bool:
        return time.monotonic() - self.beat_at < self.stale_after_s

    def missing(self) -> list[str]:
        """The readiness checks that do not hold yet."""
        return [name for name, check in self.checks.items() if not check()]


def _handler(health: Health, registry: CollectorRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                alive = health.alive()
                self._send(200 if alive else 503, b"ok\n" if alive else b"event loop stalled\n")
            elif path == "/readyz":
                missing = health.missing()
                body = b"ready\n" if not missing else ("not ready: " + ", ".join(missing) + "\n").encode()
                self._send(503 if missing else 200, body)
            elif path == "/status":
                self._send(200, json.dumps(health.status(), default=str).encode(), "application/json")
            else:
                self._send(404, b"not found: /metrics, /healthz, /readyz, /status\n")

        def _send(self, code: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


class WorkerService:
    """The endpoints above on `host:port` (port 0: an ephemeral port, see `port`)."""

    def __init__(self, health: Health, registry: CollectorRegistry, port: int, host: str = "0.0.0.0") -> None:  # noqa: S104
        self.server = ThreadingHTTPServer((host, port), _handler(health, registry))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="slatestream-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> WorkerService:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
