"""The gateway's OpenAPI 3.1 description, built from the event models themselves.

    .venv/bin/python -m slatestream.gateway.openapi docs/gateway.openapi.json   # regenerate

The event schemas come from the pydantic models (`online.events`), so the description
cannot drift from what the gateway decodes; `tests/slatestream/test_gateway.py` fails when
the committed file differs from `openapi_document()`.
"""

from __future__ import annotations

import copy
import functools
import json
import sys
from pathlib import Path
from typing import Any

from pydantic.json_schema import models_json_schema

from online.events import Click, Impression, Item, RankRequest, Slate

REF = "#/components/schemas/{model}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _one_or_many(schema: dict[str, Any]) -> dict[str, Any]:
    return {"oneOf": [schema, {"type": "array", "items": schema, "minItems": 1, "maxItems": 1000}]}


ERROR = {
    "type": "object",
    "required": ["error", "reason"],
    "properties": {
        "error": {"type": "string", "description": "bad_request, cannot_rank, timeout, unavailable, rank_failed, "
                                                   "not_found, request_entity_too_large, method_not_allowed, internal"},
        "reason": {"type": "string", "description": "what went wrong, for humans"},
        "field": {"type": "string", "description": "the offending field (400), e.g. `<json>`, `k`, `[2].shown`"},
        "request_id": {"type": "string", "description": "the rank request's id (504, 503)"},
    },
}
ACCEPTED = {
    "type": "object",
    "required": ["accepted", "offsets"],
    "properties": {
        "accepted": {"type": "integer", "description": "events published and acknowledged by the broker"},
        "offsets": {"type": "array", "description": "[partition, offset] of each event, in order",
                    "items": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2}},
    },
}


def _schemas() -> dict[str, Any]:
    _, top = models_json_schema(
        [(RankRequest, "validation"), (Slate, "serialization"), (Impression, "validation"), (Click, "validation"),
         (Item, "validation")], ref_template=REF)
    schemas: dict[str, Any] = dict(top["$defs"])
    body = copy.deepcopy(schemas["RankRequest"])
    body["title"] = "RankBody"
    body["description"] = ("A RankRequest; `type` and `request_id` may be left out (the gateway fills in "
                           "`rank_request` and a fresh `gw-<uuid>`).")
    body["required"] = [name for name in body.get("required", []) if name not in ("type", "request_id")]
    schemas["RankBody"] = body
    item = copy.deepcopy(schemas["Item"])
    item["required"] = [name for name in item.get("required", []) if name != "type"]
    schemas["ItemBody"] = item
    schemas["Feedback"] = {"oneOf": [_ref("Impression"), _ref("Click")],
                           "discriminator": {"propertyName": "type", "mapping": {
                               "impression": REF.format(model="Impression"), "click": REF.format(model="Click")}}}
    schemas["Error"] = ERROR
    schemas["Accepted"] = ACCEPTED
    return schemas


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _errors(*statuses: str) -> dict[str, Any]:
    text = {"400": "Bad input: `field` and `reason` say what (nothing was published)",
            "413": "The body is larger than the gateway accepts (1 MiB by default)",
            "503": "The broker could not be reached, or did not acknowledge",
            "422": "The worker cannot serve the request and said why (an undeclared scenario, no candidate "
                   "in the catalog, filters that leave nothing): `reason`",
            "504": "No answer within the timeout (no worker running, or it is behind)",
            "502": "The slate path failed otherwise"}
    return {status: {"description": text[status], "content": _json(_ref("Error"))} for status in statuses}


def _publish_operation(summary: str, body: dict[str, Any], description: str) -> dict[str, Any]:
    return {"summary": summary, "description": description,
            "requestBody": {"required": True, "content": _json(body)},
            "responses": {"202": {"description": "Published; the broker acknowledged every event",
                                  "content": _json(_ref("Accepted"))}, **_errors("400", "413", "503")}}


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the gateway (a fresh dict per process, cached)."""
    rank = {
        "summary": "Rank: a slate for a user",
        "description": ("Publishes the RankRequest to the requests topic and waits for the worker's slate. Every "
                        "slate item carries its propensity: copy it into the impression you send to /v1/feedback "
                        "(each shown item's `propensity` at its `position`), or offline evaluation is biased."),
        "parameters": [{"name": "timeout_s", "in": "query", "required": False,
                        "schema": {"type": "number", "exclusiveMinimum": 0},
                        "description": "Seconds to wait for the slate (default 5; at most the gateway's "
                                       "--max-timeout-s, 30 by default)."}],
        "requestBody": {"required": True, "content": _json(_ref("RankBody"))},
        "responses": {"200": {"description": "The slate", "content": _json(_ref("Slate"))},
                      **_errors("400", "413", "422", "503", "504", "502")},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "slatestream gateway", "version": "1",
                 "description": "Rank, feedback and items over HTTP, with Kafka and the slatestream workers behind "
                                "it. Events are the JSON of docs/events.md."},
        "paths": {
            "/v1/rank": {"post": rank},
            "/v1/feedback": {"post": _publish_operation(
                "Feedback: impressions and clicks", _one_or_many(_ref("Feedback")),
                "One Impression or Click (with `type`), or an array of up to 1,000; all valid or none published.")},
            "/v1/items": {"post": _publish_operation(
                "Items: add or update catalog items", _one_or_many(_ref("ItemBody")),
                "One Item (`type` may be left out), or an array of up to 1,000; all valid or none published.")},
            "/openapi.json": {"get": {"summary": "This description", "responses": {"200": {"description": "OpenAPI"}}}},
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "The process serves"}}}},
        },
        "components": {"schemas": _schemas()},
    }


def write(path: Path) -> None:
    """Write the document to `path` (sorted keys, 2-space indent, final newline)."""
    path.write_text(json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    write(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/gateway.openapi.json"))
