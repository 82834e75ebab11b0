"""JSON Schemas of every event and of the dead-letter envelope, versioned, with examples.

    slatestream schemas docs/schemas        # regenerate docs/schemas/*.schema.json

One file per model and version, `<name>.v<version>.schema.json` (JSON Schema 2020-12,
from pydantic's `model_json_schema()` in validation mode: what `decode_event` accepts),
with `"$id": "urn:slatestream:schema:<name>:v<version>"` and one example generated with
`encode_event` (`encode_dead_letter`), so it is a valid event by construction. Events use
`online.events.SCHEMA_VERSION`, the envelope `DEAD_LETTER_SCHEMA_VERSION`. A schema file of
an older version is left in place when the version is bumped (consumers may pin it).
`tests/streams/test_schemas.py` fails when the committed files differ from fresh ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel

from online.events import (
    SCHEMA_VERSION,
    Click,
    Impression,
    Item,
    RankRequest,
    ShownItem,
    Slate,
    SlateError,
    SlateItem,
    decode_event,
    encode_event,
    encode_slate_error,
)
from streams.dead_letter import DEAD_LETTER_SCHEMA_VERSION, DeadLetter, encode_dead_letter

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
EXAMPLE_TIME = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class SchemaSpec:
    """One documented model: its schema name, pydantic model, version, topic (TopicNames
    attribute) and record key, and an example value (the exact bytes on the wire)."""

    name: str
    model: type[BaseModel]
    version: int
    topic: str
    key: str
    example: bytes

    @property
    def schema_id(self) -> str:
        """"urn:slatestream:schema:<name>:v<version>"."""
        return f"urn:slatestream:schema:{self.name}:v{self.version}"

    @property
    def file_name(self) -> str:
        """"<name>.v<version>.schema.json"."""
        return f"{self.name}.v{self.version}.schema.json"


def _dead_letter_example() -> bytes:
    raw = b'{"type":"click","event_id":"c-17","user_id":"u-42","item_id":"n-1001","reward":-1}'
    try:
        decode_event(raw)
    except ValueError as error:
        letter = DeadLetter.from_error(raw, topic="slatestream.clicks", partition=2, offset=4711, key=b"u-42",
                                       error=error, time=EXAMPLE_TIME)
        return encode_dead_letter(letter)
    raise AssertionError("the dead-letter example must not decode")  # pragma: no cover


def schema_specs() -> tuple[SchemaSpec, ...]:
    """Every documented model, events first, with its example."""
    t = EXAMPLE_TIME
    request = RankRequest(request_id="r-7f3a", user_id="u-42", scenario="homepage", k=2,
                          candidates=("n-1001", "n-1002", "n-1003"), context={"hour": 12.0, "mobile": 1.0},
                          context_text="electric cars", time=t)
    slate = Slate(request_id="r-7f3a", user_id="u-42", scenario="homepage", policy="linear_ts",
                  policy_version="linear_ts-r2-3d2d90495f+onnx-43c7187778a88936-mean-L256/d32/pca-f51e36913541",
                  time=t.replace(microsecond=4_000),
                  items=(SlateItem(item_id="n-1002", position=0, score=0.61, mean=0.12, std=0.08, explored=False,
                                   propensity=0.84375),
                         SlateItem(item_id="n-1001", position=1, score=0.47, mean=0.05, std=0.11, explored=True,
                                   propensity=0.359375, reason="exploration")))
    impression = Impression(event_id="i-88", request_id="r-7f3a", user_id="u-42", scenario="homepage",
                            shown=(ShownItem(item_id="n-1002", position=0, propensity=0.84375),
                                   ShownItem(item_id="n-1001", position=1, propensity=0.359375)),
                            time=t.replace(microsecond=250_000))
    click = Click(event_id="c-17", request_id="r-7f3a", user_id="u-42", item_id="n-1002", scenario="homepage",
                  time=t.replace(second=9))
    item = Item(item_id="n-1002", fields={"title": "Electric cars outsell diesel",
                                          "abstract": "Registrations of battery cars rose 40% in a year."},
                attributes={"category": "autos", "language": "en"}, provider="newsdesk-3",
                time=t.replace(hour=9))
    return (
        SchemaSpec("rank_request", RankRequest, SCHEMA_VERSION, "requests", "user id", encode_event(request)),
        SchemaSpec("slate", Slate, SCHEMA_VERSION, "slates", "user id", encode_event(slate)),
        SchemaSpec("impression", Impression, SCHEMA_VERSION, "impressions", "user id", encode_event(impression)),
        SchemaSpec("click", Click, SCHEMA_VERSION, "clicks", "user id", encode_event(click)),
        SchemaSpec("item", Item, SCHEMA_VERSION, "items", "item id", encode_event(item)),
        SchemaSpec("slate_error", SlateError, SCHEMA_VERSION, "slates", "user id", encode_slate_error(SlateError(
            request_id="r-7f3b", user_id="u-42", scenario="newsletter", error_type="RankError",
            reason="request r-7f3b: scenario 'newsletter' is not configured (declared: homepage)", time=t))),
        SchemaSpec("dead_letter", DeadLetter, DEAD_LETTER_SCHEMA_VERSION, "dead_letter",
                   "the rejected record's key", _dead_letter_example()),
    )


def json_schema(spec: SchemaSpec) -> dict[str, Any]:
    """The JSON Schema of one model: dialect, $id, pydantic's schema, its example.

    Events list "type" as required: `decode_event` picks the model by it (the discriminator),
    although the model itself defaults it.
    """
    body = spec.model.model_json_schema()
    if "type" in body["properties"] and "type" not in body.get("required", []):
        body["required"] = ["type", *body.get("required", [])]
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": spec.schema_id,
        **body,
        "examples": [json.loads(spec.example)],
    }


def render_schema(schema: dict[str, Any]) -> str:
    """The file text: 2-space indented JSON, key order kept, UTF-8 kept, newline at the end."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def generated_schemas() -> dict[str, str]:
    """{file name: file text} of every current schema."""
    return {spec.file_name: render_schema(json_schema(spec)) for spec in schema_specs()}


def write_schemas(out_dir: str | Path) -> list[Path]:
    """Write every current schema file into `out_dir` (created if missing); return the paths.

    Files of other versions already there are kept.
    """
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in generated_schemas().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


@click.command("schemas")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
def schemas_command(out_dir: Path) -> None:
    """Write the JSON Schema of every event and of the dead-letter envelope into OUT_DIR."""
    for path in write_schemas(out_dir):
        click.echo(str(path))
