"""The committed JSON Schemas are current, and the examples in docs/events.md are valid.

`jsonschema` is not installed in the project's venv, so examples are validated twice over:
by the pydantic models (decode, re-encode, compare: the example is canonical) and by the
small validator below, which knows exactly the keywords pydantic emits and fails on any
other (so a new keyword cannot be silently skipped).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from online.events import (
    SCHEMA_VERSION,
    EventDecodeError,
    decode_event,
    decode_slate_answer,
    encode_event,
    encode_slate_error,
)
from slatestream.cli import main
from slatestream.schemas import SchemaSpec, generated_schemas, schema_specs, write_schemas
from streams.dead_letter import DEAD_LETTER_SCHEMA_VERSION, decode_dead_letter, encode_dead_letter

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = ROOT / "docs" / "schemas"
EVENTS_MD = ROOT / "docs" / "events.md"
EXAMPLE = re.compile(r"<!-- example: (\w+) -->\n```json\n(.*?)\n```", re.DOTALL)
SPECS = {spec.name: spec for spec in schema_specs()}

# --- a validator for the JSON Schema subset pydantic generates --------------------------------

ANNOTATIONS = {"$schema", "$id", "$defs", "title", "description", "default", "examples"}
TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def schema_errors(instance: Any, schema: dict[str, Any], root: dict[str, Any], path: str = "$") -> list[str]:
    """Why `instance` does not match `schema` (empty when it does)."""
    errors: list[str] = []
    for key, value in schema.items():
        if key in ANNOTATIONS:
            continue
        if key == "$ref":
            assert value.startswith("#/$defs/"), value
            errors += schema_errors(instance, root["$defs"][value.removeprefix("#/$defs/")], root, path)
        elif key == "type":
            if not TYPES[value](instance):
                errors.append(f"{path}: not {value}")
        elif key == "const":
            if instance != value or type(instance) is not type(value):
                errors.append(f"{path}: not {value!r}")
        elif key == "anyOf":
            if all(schema_errors(instance, option, root, path) for option in value):
                errors.append(f"{path}: matches no anyOf option")
        elif key == "properties":
            if isinstance(instance, dict):
                for name, sub in value.items():
                    if name in instance:
                        errors += schema_errors(instance[name], sub, root, f"{path}.{name}")
        elif key == "additionalProperties":
            if isinstance(instance, dict):
                extra = [name for name in instance if name not in schema.get("properties", {})]
                if value is False and extra:
                    errors.append(f"{path}: unexpected {extra}")
                elif isinstance(value, dict):
                    for name in extra:
                        errors += schema_errors(instance[name], value, root, f"{path}.{name}")
        elif key == "required":
            if isinstance(instance, dict):
                errors += [f"{path}: missing {name}" for name in value if name not in instance]
        elif key == "items":
            if isinstance(instance, list):
                for index, element in enumerate(instance):
                    errors += schema_errors(element, value, root, f"{path}[{index}]")
        elif key in {"minLength", "maxLength", "minItems", "minProperties"}:
            if isinstance(instance, str | list | dict):
                size = len(instance)
                if (size < value) if key.startswith("min") else (size > value):
                    errors.append(f"{path}: {key} {value}")
        elif key in {"minimum", "maximum", "exclusiveMinimum"}:
            if _number(instance):
                bad = {"minimum": instance < value, "maximum": instance > value,
                       "exclusiveMinimum": instance <= value}[key]
                if bad:
                    errors.append(f"{path}: {key} {value}")
        elif key == "pattern":
            if isinstance(instance, str) and re.search(value, instance) is None:
                errors.append(f"{path}: does not match {value}")
        elif key == "format":
            assert value == "date-time", value
            if isinstance(instance, str):
                try:
                    parsed = datetime.fromisoformat(instance)
                except ValueError:
                    errors.append(f"{path}: not a date-time")
                else:
                    if parsed.tzinfo is None:
                        errors.append(f"{path}: date-time without timezone")
        else:
            raise AssertionError(f"the test validator does not know the keyword {key!r} at {path}")
    return errors


def committed_schema(spec: SchemaSpec) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMA_DIR / spec.file_name).read_text(encoding="utf-8"))
    return schema


def documented_examples() -> dict[str, str]:
    found = EXAMPLE.findall(EVENTS_MD.read_text(encoding="utf-8"))
    examples = dict(found)
    assert len(examples) == len(found), "an example name is documented twice"
    return examples


def decode(spec: SchemaSpec, raw: str | bytes) -> Any:
    if spec.name == "slate_error":
        return decode_slate_answer(raw)
    return decode_dead_letter(raw) if spec.name == "dead_letter" else decode_event(raw)


def encode(spec: SchemaSpec, value: Any) -> bytes:
    if spec.name == "slate_error":
        return encode_slate_error(value)
    return encode_dead_letter(value) if spec.name == "dead_letter" else encode_event(value)


# --- the committed files --------------------------------------------------------------------


def test_committed_schema_files_equal_freshly_generated_ones() -> None:
    fresh = generated_schemas()
    for name, text in fresh.items():
        path = SCHEMA_DIR / name
        assert path.is_file(), f"{path} missing: run slatestream schemas docs/schemas"
        assert path.read_text(encoding="utf-8") == text, f"{path} is stale: run slatestream schemas docs/schemas"
    committed = {path.name for path in SCHEMA_DIR.glob("*.json")}
    for name in committed:
        match = re.fullmatch(r"([a-z_]+)\.v(\d+)\.schema\.json", name)
        assert match, f"unexpected file {name} in docs/schemas"
        spec = SPECS.get(match[1])
        assert spec is not None, f"{name}: no model is called {match[1]}"
        assert int(match[2]) <= spec.version, f"{name}: newer than the current version {spec.version}"
        assert int(match[2]) < spec.version or name in fresh


def test_every_model_has_a_versioned_id_and_pins_its_version() -> None:
    assert set(SPECS) == {"rank_request", "slate", "slate_error", "impression", "click", "item", "dead_letter"}
    ids = set()
    for spec in SPECS.values():
        assert spec.version == (DEAD_LETTER_SCHEMA_VERSION if spec.name == "dead_letter" else SCHEMA_VERSION)
        schema = committed_schema(spec)
        assert schema["$id"] == f"urn:slatestream:schema:{spec.name}:v{spec.version}"
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["properties"]["schema_version"]["const"] == spec.version
        assert schema["additionalProperties"] is False
        if spec.name != "dead_letter":
            assert schema["properties"]["type"]["const"] == spec.name
            assert "type" in schema["required"]
        ids.add(schema["$id"])
    assert len(ids) == len(SPECS)


def test_write_schemas_and_the_command(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "click.v0.schema.json").write_text("{}")  # an older version stays
    paths = write_schemas(tmp_path / "out")
    assert sorted(path.name for path in paths) == sorted(generated_schemas())
    assert (tmp_path / "out" / "click.v0.schema.json").read_text() == "{}"
    result = CliRunner().invoke(main, ["schemas", str(tmp_path / "again")])
    assert result.exit_code == 0, result.output
    assert len(result.output.splitlines()) == len(SPECS)
    assert CliRunner().invoke(main, ["schemas"]).exit_code == 2


# --- the documented examples ------------------------------------------------------------------


def test_docs_show_one_example_per_model() -> None:
    assert set(documented_examples()) == set(SPECS)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_documented_example_decodes_is_canonical_and_validates_against_its_schema(name: str) -> None:
    spec = SPECS[name]
    block = documented_examples()[name]
    value = decode(spec, block)
    assert type(value) is spec.model
    assert json.loads(encode(spec, value)) == json.loads(block)  # nothing defaulted, dropped or rewritten
    assert json.loads(block) == json.loads(spec.example)  # the docs show the generated example
    schema = committed_schema(spec)
    assert schema["examples"] == [json.loads(block)]
    assert schema_errors(json.loads(block), schema, schema) == []


def _mutations(spec: SchemaSpec, example: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    name = spec.name
    required = "source_topic" if name == "dead_letter" else ("item_id" if name == "item" else "user_id")
    naive = example["time"].removesuffix("Z")
    return [
        ("missing required field", {k: v for k, v in example.items() if k != required}),
        ("unknown field", {**example, "colour": "red"}),
        ("future schema version", {**example, "schema_version": spec.version + 1}),
        ("time without timezone", {**example, "time": naive}),
        ("empty identifier", {**example, required: ""}),
        ("number for a string", {**example, required: 7}),
    ]


@pytest.mark.parametrize("name", sorted(SPECS))
def test_schema_and_decoder_reject_the_same_broken_variants(name: str) -> None:
    spec = SPECS[name]
    schema = committed_schema(spec)
    for label, broken in _mutations(spec, json.loads(spec.example)):
        assert schema_errors(broken, schema, schema), f"schema accepts {label}"
        with pytest.raises(EventDecodeError):
            decode(spec, json.dumps(broken))
