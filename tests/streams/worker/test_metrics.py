"""The worker's metrics and endpoints without a broker: exposition parsed, health and readiness."""

import urllib.error
import urllib.request
from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from online.events import Slate, SlateItem
from streams.worker.metrics import WorkerMetrics, WorkerState
from streams.worker.records import Counts
from streams.worker.service import Health, WorkerService


def slate(explored: list[bool]) -> Slate:
    items = tuple(SlateItem(item_id=f"i{n}", position=n, score=0.1, mean=0.1, std=0.1, explored=e, propensity=0.5)
                  for n, e in enumerate(explored))
    return Slate(request_id="r", user_id="u", scenario="feed", items=items, policy="linear_ts", policy_version="v",
                 time=datetime(2026, 1, 1, tzinfo=UTC))


def families(metrics: WorkerMetrics) -> dict[str, list[tuple[dict[str, str], float]]]:
    from prometheus_client import generate_latest

    text = generate_latest(metrics.registry).decode()
    return {f.name: [(s.labels, s.value) for s in f.samples] for f in text_string_to_metric_families(text)}


def test_the_exposition_carries_every_documented_metric() -> None:
    counts = Counts(received=5, ranked=2, learned=2, dead_lettered=1, by_reason={"EventDecodeError": 1})
    counts.tally("requests", "ranked", 2)
    counts.tally("clicks", "dead_lettered")
    state = WorkerState(counts=lambda: counts, lag=lambda: {("t.clicks", 1): 7}, last_commit_at=lambda: None,
                        state_keys=lambda: 42, catalog_items=lambda: 12, live=lambda: {("feed", "linear_ts"): (40, 2)},
                        provider="CPUExecutionProvider", ready=lambda: True)
    metrics = WorkerMetrics(state)
    metrics.observe_slate(slate([True, False, False, False]), 0.004)
    metrics.learn_batch_seconds.observe(0.02)
    found = families(metrics)
    assert ({"topic": "requests", "outcome": "ranked"}, 2.0) in found["slatestream_records"]
    assert found["slatestream_dead_letters"] == [({"reason": "EventDecodeError"}, 1.0)]
    assert found["slatestream_consumer_lag"] == [({"topic": "t.clicks", "partition": "1"}, 7.0)]
    assert found["slatestream_state_keys"][0][1] == 42 and found["slatestream_catalog_items"][0][1] == 12
    assert found["slatestream_live_ctr"] == [({"scenario": "feed", "policy": "linear_ts"}, 0.05)]
    assert found["slatestream_exploration_share"] == [({"scenario": "feed", "policy": "linear_ts"}, 0.25)]
    assert found["slatestream_execution_provider_info"] == [({"provider": "CPUExecutionProvider"}, 1.0)]
    assert any(labels.get("scenario") == "feed" for labels, _ in found["slatestream_rank_seconds"])
    assert "slatestream_learn_batch_seconds" in found and "slatestream_seconds_since_commit" in found
    assert found["slatestream_ready"][0][1] == 1.0


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_the_endpoints_answer_health_readiness_metrics_and_status() -> None:
    ready = [False]
    health = Health(checks={"partitions assigned": lambda: ready[0]}, status=lambda: {"assigned": [1]},
                    stale_after_s=0.5)
    metrics = WorkerMetrics(WorkerState(counts=Counts))
    service = WorkerService(health, metrics.registry, 0, "127.0.0.1").start()
    base = f"http://127.0.0.1:{service.port}"
    try:
        assert get(f"{base}/healthz") == (200, "ok\n")
        assert get(f"{base}/readyz") == (503, "not ready: partitions assigned\n")
        ready[0] = True
        assert get(f"{base}/readyz")[0] == 200
        assert get(f"{base}/status") == (200, '{"assigned": [1]}')
        code, text = get(f"{base}/metrics")
        assert code == 200 and "slatestream_records" in text
        health.beat_at -= 1.0  # the event loop stopped beating
        assert get(f"{base}/healthz")[0] == 503
        assert get(f"{base}/nope")[0] == 404
    finally:
        service.stop()


@pytest.mark.parametrize("port", [0])
def test_port_zero_binds_an_ephemeral_port(port: int) -> None:
    service = WorkerService(Health(), WorkerMetrics(WorkerState(counts=Counts)).registry, port, "127.0.0.1")
    assert service.port > 0
    service.server.server_close()
