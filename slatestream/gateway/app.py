"""The gateway's aiohttp application: JSON in, JSON out, a `SlatestreamClient` behind it.

| route | body | answer |
|---|---|---|
| `POST /v1/rank[?timeout_s=S]` | a RankRequest (`request_id` optional) | 200 the Slate; 422 why not; 504 none |
| `POST /v1/feedback` | an Impression or Click, or an array of them | 202 once the broker acked all |
| `POST /v1/items` | an Item (`type` optional), or an array | 202 once acknowledged |
| `GET /openapi.json`, `GET /healthz` | | the OpenAPI description; 200 while the process serves |

Errors are `{"error": kind, "field": ..., "reason": ...}`: 400 `bad_request` with the decoder's
field and reason (nothing is published), 413 for a body over `max_body_bytes`, 422 `cannot_rank`
with the worker's reason when it answered that it cannot serve the request, 504 `timeout`
naming the request id, 503 `unavailable` when the broker cannot be reached or refuses a record,
502 `rank_failed` for any other failure of the slate path. The client is blocking (kafka-python),
so each HTTP request's Kafka work runs on a bounded thread pool (`threads`): at most that many
ranks wait for their slates at once; more queue.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from aiohttp import web
from kafka.errors import KafkaError
from kafka.producer.future import FutureRecordMetadata

from online.events import Click, EventDecodeError, Impression, Item, RankRequest, Slate, decode_event, encode_event
from slatestream.gateway.openapi import openapi_document
from streams.client import SlateRequestError

log = logging.getLogger(__name__)
JSON = "application/json"
MAX_BATCH = 1_000
"""The most events one feedback or items call may carry."""


class SlateClient(Protocol):
    """What the gateway needs of `streams.client.SlatestreamClient`."""

    def publish(self, event: RankRequest | Impression | Click | Item) -> FutureRecordMetadata: ...

    def await_slate(self, request_id: str, timeout_s: float = 5.0) -> Slate: ...


class HttpError(Exception):
    """An answer other than 2xx: status and the JSON error body's fields."""

    def __init__(self, status: int, kind: str, reason: str, **extra: Any) -> None:
        super().__init__(f"{status} {kind}: {reason}")
        self.status = status
        self.body = {"error": kind, "reason": reason, **extra}


def bad_request(field: str, reason: str) -> HttpError:
    return HttpError(400, "bad_request", reason, field=field)


def _no_constants(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def parse_json(raw: bytes) -> Any:
    """The JSON value of a body; 400 (field "<json>") when it is not JSON (NaN, Infinity refused)."""
    try:
        return json.loads(raw, parse_constant=_no_constants)
    except (ValueError, RecursionError) as error:
        raise bad_request("<json>", f"not JSON: {error}") from None


EventType = type[RankRequest] | type[Impression] | type[Click] | type[Item]


def decode_as(value: Any, expected: tuple[EventType, ...], defaults: dict[str, Any], where: str) -> Any:
    """One event from a parsed JSON object: `defaults` fill absent keys, then `decode_event`
    validates it; 400 naming the field (prefixed with `where`, e.g. "[3]") otherwise."""
    if not isinstance(value, dict):
        raise bad_request(where or "<body>", f"expected a JSON object, got {type(value).__name__}")
    try:
        event = decode_event(json.dumps({**defaults, **value}))
    except EventDecodeError as error:
        raise bad_request(f"{where}{error.field}", error.reason) from None
    if not isinstance(event, expected):
        names = " or ".join(sorted(kind.model_fields["type"].default for kind in expected))
        raise bad_request(f"{where}type", f"expected {names} here, got {event.type}")
    return event


def json_response(status: int, body: Any) -> web.Response:
    return web.Response(status=status, body=json.dumps(body).encode(), content_type=JSON)


class Gateway:
    """The HTTP handlers over one client.

    Args:
        client: publishes events and awaits slates (a `SlatestreamClient`).
        rank_timeout_s: how long a rank waits for its slate when the call names no timeout_s.
        max_timeout_s: the largest timeout_s a call may ask for.
        threads: Kafka calls running at once (each waiting rank holds one).
        publish_timeout_s: how long feedback and items wait for the broker's acknowledgement.
    """

    def __init__(self, client: SlateClient, *, rank_timeout_s: float = 5.0, max_timeout_s: float = 30.0,
                 threads: int = 64, publish_timeout_s: float = 10.0) -> None:
        if not 0 < rank_timeout_s <= max_timeout_s:
            raise ValueError(f"need 0 < rank_timeout_s ({rank_timeout_s}) <= max_timeout_s ({max_timeout_s})")
        self.client = client
        self.rank_timeout_s = rank_timeout_s
        self.max_timeout_s = max_timeout_s
        self.publish_timeout_s = publish_timeout_s
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="gateway-kafka")

    async def _blocking(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)

    def _timeout(self, request: web.Request) -> float:
        text = request.query.get("timeout_s")
        if text is None:
            return self.rank_timeout_s
        try:
            value = float(text)
        except ValueError:
            raise bad_request("timeout_s", f"not a number: {text[:50]!r}") from None
        if not 0 < value <= self.max_timeout_s:
            raise bad_request("timeout_s", f"must be within (0, {self.max_timeout_s:g}] seconds, not {value:g}")
        return value

    async def rank(self, request: web.Request) -> web.Response:
        timeout_s = self._timeout(request)
        value = parse_json(await request.read())
        defaults = {"type": "rank_request", "request_id": f"gw-{uuid.uuid4().hex}"}
        rank_request: RankRequest = decode_as(value, (RankRequest,), defaults, "")
        slate = await self._blocking(self._rank_blocking, rank_request, timeout_s)
        return web.Response(status=200, body=encode_event(slate), content_type=JSON)

    def _rank_blocking(self, rank_request: RankRequest, timeout_s: float) -> Slate:
        """Publish, then wait for the slate (the time publishing took counts against timeout_s)."""
        start = time.monotonic()
        sent = self._publish(rank_request)
        try:
            return self.client.await_slate(rank_request.request_id, max(timeout_s - (time.monotonic() - start), 0.0))
        except TimeoutError:
            failed = sent.exception if sent.is_done and sent.failed() else None
            if failed is not None:
                raise HttpError(503, "unavailable", f"the request was not published: {failed!r}",
                                request_id=rank_request.request_id) from None
            raise HttpError(504, "timeout", f"no answer within {timeout_s:g} s (is a worker running, and caught "
                            "up? `slatestream status`)",
                            request_id=rank_request.request_id) from None
        except SlateRequestError as error:  # the worker answered why it cannot serve the request
            raise HttpError(422, "cannot_rank", f"{error.error.error_type}: {error.error.reason}",
                            request_id=rank_request.request_id) from None
        except RuntimeError as error:  # the client's slate consumer failed or the client closed
            raise HttpError(503, "unavailable", str(error), request_id=rank_request.request_id) from None

    def _publish(self, event: RankRequest | Impression | Click | Item) -> FutureRecordMetadata:
        try:
            return self.client.publish(event)
        except KafkaError as error:
            raise HttpError(503, "unavailable", f"cannot publish: {error!r}") from None

    async def feedback(self, request: web.Request) -> web.Response:
        events = self._batch(parse_json(await request.read()), (Impression, Click), {})
        return await self._publish_all(events)

    async def items(self, request: web.Request) -> web.Response:
        events = self._batch(parse_json(await request.read()), (Item,), {"type": "item"})
        return await self._publish_all(events)

    @staticmethod
    def _batch(value: Any, expected: tuple[EventType, ...], defaults: dict[str, Any]) -> list[Any]:
        """One event, or an array of 1..MAX_BATCH of them: all valid, or 400 naming the first bad one."""
        if not isinstance(value, list):
            return [decode_as(value, expected, defaults, "")]
        if not 1 <= len(value) <= MAX_BATCH:
            raise bad_request("<body>", f"an array of 1 to {MAX_BATCH} events, not {len(value)}")
        return [decode_as(one, expected, defaults, f"[{n}].") for n, one in enumerate(value)]

    async def _publish_all(self, events: Sequence[Impression | Click | Item]) -> web.Response:
        offsets = await self._blocking(self._publish_blocking, events)
        return json_response(202, {"accepted": len(events), "offsets": offsets})

    def _publish_blocking(self, events: Sequence[Impression | Click | Item]) -> list[list[int]]:
        futures = [self._publish(event) for event in events]
        try:
            return [[meta.partition, meta.offset] for meta in (f.get(timeout=self.publish_timeout_s) for f in futures)]
        except KafkaError as error:
            raise HttpError(503, "unavailable", f"the broker did not acknowledge every event: {error!r}") from None

    async def openapi(self, request: web.Request) -> web.Response:
        return json_response(200, openapi_document())

    async def healthz(self, request: web.Request) -> web.Response:
        return json_response(200, {"status": "ok"})

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


@web.middleware
async def errors_as_json(request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """HttpError -> its JSON answer; aiohttp's own errors (404, 405, 413) as JSON too; anything
    else -> 500 with the exception's class (logged with its traceback)."""
    try:
        return await handler(request)
    except HttpError as error:
        return json_response(error.status, error.body)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return json_response(error.status, {"error": error.reason.lower().replace(" ", "_"), "reason": error.text})
    except Exception as error:
        log.exception("gateway: %s %s failed", request.method, request.path)
        return json_response(500, {"error": "internal", "reason": type(error).__name__})


def make_app(gateway: Gateway, *, max_body_bytes: int = 1024 * 1024) -> web.Application:
    """The aiohttp application serving `gateway` (closed with the application)."""
    app = web.Application(middlewares=[errors_as_json], client_max_size=max_body_bytes)
    app.router.add_post("/v1/rank", gateway.rank)
    app.router.add_post("/v1/feedback", gateway.feedback)
    app.router.add_post("/v1/items", gateway.items)
    app.router.add_get("/openapi.json", gateway.openapi)
    app.router.add_get("/healthz", gateway.healthz)

    async def close(_: web.Application) -> None:
        gateway.close()

    app.on_cleanup.append(close)
    return app
