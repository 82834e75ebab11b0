"""JSON-lines event files: round trip of every event type, gzip, and line-numbered errors."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from online.datasets import AnyEvent, EventLogError, parse_event_lines, read_events, write_events
from online.events import Click, Impression, Item, RankRequest, ShownItem, Slate, SlateItem, encode_event

T0 = datetime(2026, 1, 1, tzinfo=UTC)

EVENTS: list[AnyEvent] = [
    Item(item_id="a", fields={"title": "A"}, attributes={"kind": "x"}, provider="p", time=T0),
    RankRequest(request_id="r1", user_id="u", candidates=("a", "b"), context={"c": 1.0}, k=2, time=T0),
    Slate(
        request_id="r1", user_id="u", scenario="default", policy="p", policy_version="v1", time=T0,
        items=(SlateItem(item_id="a", position=0, score=0.5, mean=0.4, std=0.1, explored=False, propensity=0.9),),
    ),
    Impression(event_id="i1", request_id="r1", user_id="u", shown=(ShownItem(item_id="a", position=0),), time=T0),
    Click(event_id="c1", request_id="r1", user_id="u", item_id="a", time=T0),
]


@pytest.mark.parametrize("name", ["events.jsonl", "events.jsonl.gz"])
def test_round_trip(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    assert write_events(path, iter(EVENTS)) == len(EVENTS)
    assert list(read_events(path)) == EVENTS
    assert path.read_bytes()[:2] == (b"\x1f\x8b" if name.endswith(".gz") else b'{"')


def test_blank_lines_are_skipped() -> None:
    lines: list[bytes | str] = [encode_event(EVENTS[0]), b"", b"  \n", encode_event(EVENTS[4]).decode()]
    assert list(parse_event_lines(lines)) == [EVENTS[0], EVENTS[4]]


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (b'{"type":"impression","event_id":"e","request_id":"r","user_id":"u",'
         b'"shown":[{"item_id":"a","position":0,"propensity":0}]}', "impression.shown.0.propensity"),
        (b'{"type":"click"', "<json>"),
        (b'{"type":"nope"}', "type"),
        (b'{"type":"click","event_id":"e","request_id":"r","user_id":"u"}', "click.item_id"),
    ],
)
def test_bad_line_names_line_and_field(tmp_path: Path, bad: bytes, field: str) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(encode_event(EVENTS[0]) + b"\n\n" + bad + b"\n" + encode_event(EVENTS[4]) + b"\n")
    reader = read_events(path)
    assert next(reader) == EVENTS[0]  # lazily: good lines before the bad one are delivered
    with pytest.raises(EventLogError) as caught:
        next(reader)
    assert (caught.value.line, caught.value.field) == (3, field)
    assert str(caught.value).startswith(f"{path}:3: {field}: ")
    assert isinstance(caught.value, ValueError)
