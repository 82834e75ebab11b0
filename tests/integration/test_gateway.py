"""`slatestream gateway` over HTTP (httpx) against the real broker and a real worker: items,
ranks with propensities, feedback that the worker learns from, 400 and 422 with reasons."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from streams.settings import StreamSettings
from streams.testing.gateway_process import GatewayProcess
from streams.testing.worker_process import WorkerProcess
from streams.topics import ensure_topics
from tests.integration.worker_helpers import poll

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

CANDIDATES = [f"n{n}" for n in range(12)]


@pytest.fixture
def http(kafka_settings: StreamSettings, tmp_path: Path) -> Iterator[httpx.Client]:
    """A worker and a gateway on this test's topics; yields an HTTP client of the gateway."""
    ensure_topics(kafka_settings)
    with WorkerProcess(kafka_settings, tmp_path / "store", tmp_path / "worker.log",
                       args=("--dim", "16", "--n-draws", "32")) as worker, \
            GatewayProcess(kafka_settings, tmp_path / "gateway.log") as gateway:
        worker.wait_ready()
        gateway.wait_ready()
        with httpx.Client(base_url=gateway.url, timeout=30) as client:
            yield client


def test_rank_feedback_items_over_http(http: httpx.Client) -> None:
    items = [{"item_id": item, "fields": {"title": f"{'markets rally' if n % 2 else 'cup final'} {n}"}}
             for n, item in enumerate(CANDIDATES)]
    answer = http.post("/v1/items", json=items)
    assert answer.status_code == 202 and answer.json()["accepted"] == 12

    def rank(request_id: str, k: int = 4) -> dict:
        answer = http.post("/v1/rank", params={"timeout_s": 20},
                           json={"request_id": request_id, "user_id": "u1", "candidates": CANDIDATES, "k": k})
        assert answer.status_code == 200, answer.text
        return answer.json()

    def catalog_loaded() -> bool:  # the worker ranks the candidates it knows: wait for all twelve
        answer = http.post("/v1/rank", params={"timeout_s": 5},
                           json={"user_id": "u0", "candidates": CANDIDATES, "k": len(CANDIDATES)})
        return answer.status_code == 200 and len(answer.json()["items"]) == len(CANDIDATES)

    poll(catalog_loaded, 60, "the whole catalog to load")
    first = rank("r0")
    assert [item["position"] for item in first["items"]] == [0, 1, 2, 3]
    assert all(0 < item["propensity"] <= 1 for item in first["items"])
    for step in range(1, 13):  # u1 clicks n3 whenever it is shown; it is shown last when the slate lacks it
        slate = rank(f"r{step}")
        shown = [{"item_id": i["item_id"], "position": i["position"], "propensity": i["propensity"]}
                 for i in slate["items"] if i["item_id"] != "n3"][:3]
        shown.append({"item_id": "n3", "position": 3})
        answer = http.post("/v1/feedback", json=[
            {"type": "impression", "event_id": f"e{step}", "request_id": f"r{step}", "user_id": "u1", "shown": shown},
            {"type": "click", "event_id": f"c{step}", "request_id": f"r{step}", "user_id": "u1", "item_id": "n3"}])
        assert answer.status_code == 202, answer.text

    def learned() -> bool:
        means = {item["item_id"]: item["mean"] for item in rank("final", k=12)["items"]}
        return means["n3"] == max(means.values())

    poll(learned, 30, "the clicks on n3 to raise its mean above every other item's")

    answer = http.post("/v1/rank", json={"user_id": "u1", "k": 0})
    assert answer.status_code == 400 and answer.json()["field"] == "rank_request.k"
    answer = http.post("/v1/rank", params={"timeout_s": 2}, json={"request_id": "r-unknown", "user_id": "u1",
                                                                  "candidates": ["not-in-the-catalog"]})
    assert answer.status_code == 422, answer.text  # the worker answers why: no candidate is in the catalog
    assert answer.json()["error"] == "cannot_rank" and "not-in-the-catalog" in answer.json()["reason"]
