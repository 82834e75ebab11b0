"""A real worker's endpoints on the real broker: readiness, the Prometheus exposition parsed, a real
Prometheus server scraping it and answering a query, and `slatestream status`."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.client import SlatestreamClient
from streams.control import ensure_control_topic
from streams.settings import StreamSettings
from streams.testing import WorkerProcess, make_workload, publish
from streams.topics import ensure_topics

from .worker_helpers import poll

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ARGS = ("--encoder", "hashing", "--dim", "16", "--n-draws", "8")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""


def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    _, text = get(f"http://127.0.0.1:{port}/metrics")
    return {f.name: [(s.labels, s.value) for s in f.samples] for f in text_string_to_metric_families(text)}


def prometheus_query(port: int, query: str) -> list[dict[str, object]]:
    code, body = get(f"http://127.0.0.1:{port}/api/v1/query?query={urllib.parse.quote(query)}")
    return json.loads(body)["data"]["result"] if code == 200 else []


def test_a_worker_is_ready_scraped_and_queried(kafka_settings: StreamSettings, tmp_path: Path) -> None:
    settings = kafka_settings
    ensure_topics(settings)
    ensure_control_topic(settings)
    workload = make_workload(n_users=8, n_items=12, n_requests=60, seed=5)
    port = free_port()
    worker = WorkerProcess(settings, tmp_path / "store", tmp_path / "worker.log", ARGS, metrics_port=port).start()
    try:
        worker.wait_ready()
        publish(settings, workload.items)
        poll(lambda: get(f"http://127.0.0.1:{port}/readyz")[0] == 200, 90, "the worker to be ready")
        with SlatestreamClient(settings) as client:
            for request in workload.requests[:20]:
                client.request_slate(request, timeout_s=30)
        publish(settings, workload.feedback()[:40])
        poll(lambda: any(v > 0 for _, v in scrape(port).get("slatestream_live_ctr", [(None, 0.0)])) or bool(
            [s for s in scrape(port).get("slatestream_records", []) if s[0].get("outcome") == "learned"]), 60,
            "feedback to be learned")
        found = scrape(port)
        ranked = [v for labels, v in found["slatestream_records"] if labels == {"topic": "requests",
                                                                                 "outcome": "ranked"}]
        assert ranked and ranked[0] >= 20
        assert found["slatestream_catalog_items"][0][1] == 12
        assert found["slatestream_ready"][0][1] == 1.0
        assert any(labels.get("scenario") == "default" for labels, _ in found["slatestream_rank_seconds"])
        assert found["slatestream_execution_provider_info"][0][0] == {"provider": "cpu"}
        status = subprocess.run([sys.executable, "-m", "slatestream", "status", "--url", f"http://127.0.0.1:{port}"],
                                capture_output=True, text=True, timeout=60, check=False)
        assert status.returncode == 0, status.stdout + status.stderr
        assert "ready: ready" in status.stdout and "catalog: 12 items" in status.stdout
        if shutil.which("prometheus") is None:
            pytest.skip("no prometheus binary (CI installs Debian's package)")
        prometheus_scrapes(port, tmp_path)
    finally:
        worker.stop()


def prometheus_scrapes(worker_port: int, tmp_path: Path) -> None:
    """A real Prometheus server scrapes the worker and answers a query over its metrics."""
    web = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(f"global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: slatestream\n"
                      f"    static_configs:\n      - targets: ['127.0.0.1:{worker_port}']\n")
    server = subprocess.Popen(["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                               f"--web.listen-address=127.0.0.1:{web}"], stdout=subprocess.DEVNULL,
                              stderr=(tmp_path / "prometheus.log").open("wb"))
    try:
        deadline = time.monotonic() + 60
        result: list[dict[str, object]] = []
        while time.monotonic() < deadline and not result:
            result = prometheus_query(web, 'slatestream_catalog_items{job="slatestream"}')
            time.sleep(1.0)
        assert result, (tmp_path / "prometheus.log").read_text()[-2000:]
        assert float(result[0]["value"][1]) == 12.0  # type: ignore[index]
        assert prometheus_query(web, "sum(slatestream_records_total)")
    finally:
        server.terminate()
        server.wait(timeout=30)
