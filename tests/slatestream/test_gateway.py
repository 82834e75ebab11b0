"""The HTTP gateway through a real HTTP client (httpx) over a stand-in Kafka client: answers,
errors with their reasons, nothing published on bad input, and the committed OpenAPI file."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from kafka.errors import KafkaConnectionError

from online.events import Click, Impression, Item, RankRequest, Slate, SlateItem, decode_event
from slatestream.gateway.app import Gateway, make_app
from slatestream.gateway.openapi import openapi_document

ROOT = Path(__file__).resolve().parents[2]


class Sent:
    """A published record's future, as kafka-python's FutureRecordMetadata answers."""

    def __init__(self, offset: int, error: Exception | None = None) -> None:
        self.offset, self.exception, self.is_done = offset, error, True

    def failed(self) -> bool:
        return self.exception is not None

    def get(self, timeout: float | None = None) -> Any:
        if self.exception is not None:
            raise self.exception
        return type("Meta", (), {"partition": 0, "offset": self.offset})()


class StandIn:
    """Publishes into a list; answers every request with a two-item slate, except user "silent"."""

    def __init__(self) -> None:
        self.published: list[Any] = []
        self.requests: dict[str, RankRequest] = {}
        self.broken = False

    def publish(self, event: Any) -> Sent:
        if self.broken:
            raise KafkaConnectionError("no broker")
        self.published.append(event)
        if isinstance(event, RankRequest):
            self.requests[event.request_id] = event
        return Sent(len(self.published) - 1)

    def await_slate(self, request_id: str, timeout_s: float = 5.0) -> Slate:
        request = self.requests[request_id]
        if request.user_id == "silent":
            time.sleep(timeout_s)
            raise TimeoutError(f"no slate for request {request_id!r}")
        items = tuple(SlateItem(item_id=f"n{n}", position=n, score=0.5, mean=0.4, std=0.1, explored=False,
                                propensity=0.25 * (n + 1)) for n in range(2))
        return Slate(request_id=request_id, user_id=request.user_id, scenario=request.scenario, items=items,
                     policy="linear_ts", policy_version="v")


@contextmanager
def serving(gateway: Gateway, max_body_bytes: int = 1024 * 1024) -> Iterator[httpx.Client]:
    """The app on a free loopback port in a thread; yields an httpx client for it."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(make_app(gateway, max_body_bytes=max_body_bytes))
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            yield http
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture
def client() -> StandIn:
    return StandIn()


@pytest.fixture
def http(client: StandIn) -> Iterator[httpx.Client]:
    with serving(Gateway(client, rank_timeout_s=5.0, max_timeout_s=2.0 + 8.0, threads=4)) as http:
        yield http


def test_rank_fills_in_type_and_request_id(http: httpx.Client, client: StandIn) -> None:
    answer = http.post("/v1/rank", json={"user_id": "u1", "scenario": "front", "candidates": ["a", "b"]})
    assert answer.status_code == 200, answer.text
    slate = decode_event(answer.content)
    assert isinstance(slate, Slate) and slate.user_id == "u1" and slate.scenario == "front"
    assert [item.propensity for item in slate.items] == [0.25, 0.5]
    [request] = client.published
    assert request.request_id == slate.request_id and request.request_id.startswith("gw-")
    assert "k" not in request.model_fields_set  # the scenario's slate size applies
    answer = http.post("/v1/rank", json={"type": "rank_request", "request_id": "r-9", "user_id": "u1", "k": 3})
    assert answer.json()["request_id"] == "r-9" and client.published[-1].k == 3


@pytest.mark.parametrize(("body", "field", "reason"), [
    (b"{not json", "<json>", "not JSON"),
    (b'{"user_id": "u", "context": {"x": NaN}}', "<json>", "NaN is not JSON"),
    (b"[1, 2]", "<body>", "expected a JSON object"),
    (b'{"user_id": "u", "k": 0}', "rank_request.k", "greater than or equal to 1"),
    (b'{"k": 2}', "rank_request.user_id", "Field required"),
    (b'{"user_id": "u", "colour": "red"}', "rank_request.colour", "Extra inputs are not permitted"),
    (b'{"type": "click", "event_id": "e", "request_id": "r", "user_id": "u", "item_id": "i"}', "type",
     "expected rank_request here, got click"),
])
def test_bad_rank_input_is_400_with_the_reason_and_publishes_nothing(
        http: httpx.Client, client: StandIn, body: bytes, field: str, reason: str) -> None:
    answer = http.post("/v1/rank", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 400
    error = answer.json()
    assert error["error"] == "bad_request" and error["field"] == field and reason in error["reason"], error
    assert client.published == []


def test_no_slate_within_the_timeout_is_504(http: httpx.Client) -> None:
    start = time.monotonic()
    answer = http.post("/v1/rank", params={"timeout_s": "0.3"}, json={"request_id": "r-s", "user_id": "silent"})
    assert answer.status_code == 504 and time.monotonic() - start < 3
    assert answer.json()["request_id"] == "r-s" and "no answer within 0.3 s" in answer.json()["reason"]
    for bad in ("0", "-1", "11", "soon"):
        answer = http.post("/v1/rank", params={"timeout_s": bad}, json={"user_id": "u"})
        assert answer.status_code == 400 and answer.json()["field"] == "timeout_s"


def test_feedback_and_items_publish_all_or_nothing(http: httpx.Client, client: StandIn) -> None:
    impression = {"type": "impression", "event_id": "e1", "request_id": "r1", "user_id": "u1",
                  "shown": [{"item_id": "a", "position": 0, "propensity": 0.5}]}
    click = {"type": "click", "event_id": "c1", "request_id": "r1", "user_id": "u1", "item_id": "a"}
    answer = http.post("/v1/feedback", json=[impression, click])
    assert answer.status_code == 202 and answer.json() == {"accepted": 2, "offsets": [[0, 0], [0, 1]]}
    assert [type(event) for event in client.published] == [Impression, Click]
    assert client.published[0].shown[0].propensity == 0.5

    answer = http.post("/v1/feedback", json=[click, {**click, "reward": -1}])
    assert answer.status_code == 400 and answer.json()["field"] == "[1].click.reward"
    answer = http.post("/v1/feedback", json={"user_id": "u1"})
    assert answer.status_code == 400 and answer.json()["field"] == "type"
    answer = http.post("/v1/feedback", json=[])
    assert answer.status_code == 400
    assert len(client.published) == 2

    answer = http.post("/v1/items", json={"item_id": "n-1", "fields": {"title": "Rates held"}})
    assert answer.status_code == 202 and isinstance(client.published[-1], Item)
    answer = http.post("/v1/items", json={"type": "impression", "item_id": "n-1"})
    assert answer.status_code == 400


def test_broker_failures_are_503(http: httpx.Client, client: StandIn) -> None:
    client.broken = True
    answer = http.post("/v1/rank", json={"user_id": "u"})
    assert answer.status_code == 503 and "no broker" in answer.json()["reason"]
    answer = http.post("/v1/items", json={"item_id": "n-1", "fields": {"title": "x"}})
    assert answer.status_code == 503


def test_http_errors_are_json(client: StandIn) -> None:
    with serving(Gateway(client), max_body_bytes=2048) as http:
        answer = http.post("/v1/items", content=b"[" + b" " * 4096 + b"]")
        assert answer.status_code == 413 and answer.json()["error"] == "request_entity_too_large"
        assert http.get("/v1/nothing").json()["error"] == "not_found"
        assert http.get("/v1/rank").status_code == 405
        assert http.get("/healthz").json() == {"status": "ok"}
        assert http.get("/openapi.json").json() == json.loads(json.dumps(openapi_document()))
    assert client.published == []


def test_the_committed_openapi_file_is_current() -> None:
    committed = json.loads((ROOT / "docs" / "gateway.openapi.json").read_text())
    assert committed == json.loads(json.dumps(openapi_document())), \
        "regenerate: .venv/bin/python -m slatestream.gateway.openapi docs/gateway.openapi.json"
    assert set(committed["paths"]) == {"/v1/rank", "/v1/feedback", "/v1/items", "/openapi.json", "/healthz"}
