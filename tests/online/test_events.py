"""The event codec: round trips, and clear errors naming the field for bad input."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from online.events import (
    Click,
    EventDecodeError,
    Impression,
    Item,
    RankRequest,
    ShownItem,
    Slate,
    SlateItem,
    decode_event,
    encode_event,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def examples() -> list[RankRequest | Slate | Impression | Click | Item]:
    return [
        RankRequest(request_id="r1", user_id="u1", scenario="feed", candidates=("a", "b"),
                    context={"age": 0.3}, context_text="red shoes", k=2, time=T0),
        Slate(request_id="r1", user_id="u1", scenario="feed", policy="linear_ts",
              policy_version="linear_ts-r1-x", time=T0,
              items=(SlateItem(item_id="a", position=0, score=0.2, mean=0.1, std=0.05,
                               explored=False, propensity=0.5, reason="popular"),)),
        Impression(event_id="e1", request_id="r1", user_id="u1",
                   shown=(ShownItem(item_id="a", position=0, propensity=0.5),), time=T0),
        Click(event_id="c1", request_id="r1", user_id="u1", item_id="a", time=T0),
        Item(item_id="a", fields={"title": "Red shoe"}, attributes={"colour": "red"},
             provider="acme", time=T0),
    ]


@pytest.mark.parametrize("event", examples(), ids=lambda e: e.type)
def test_round_trip(event: RankRequest | Slate | Impression | Click | Item) -> None:
    assert decode_event(encode_event(event)) == event


def test_times_are_normalised_to_utc() -> None:
    paris = timezone(timedelta(hours=1))
    request = RankRequest(request_id="r", user_id="u", time=datetime(2026, 1, 1, 1, tzinfo=paris))
    assert request.time == T0 and request.time.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("raw", "field", "reason_part"),
    [
        (b"{not json", "<json>", "Invalid JSON"),
        (b'{"type": "spam"}', "type", "does not match"),
        (b'{"type": "click", "request_id": "r", "user_id": "u", "item_id": "a"}', "click.event_id", "required"),
        (b'{"type": "rank_request", "request_id": "r", "user_id": "u", "k": "ten"}', "rank_request.k", "integer"),
        (b'{"type": "rank_request", "request_id": "r", "user_id": "u", "k": 0}', "rank_request.k", "greater than"),
        (b'{"type": "rank_request", "schema_version": 2, "request_id": "r", "user_id": "u"}',
         "rank_request.schema_version", "1"),
        (b'{"type": "rank_request", "request_id": "r", "user_id": "u", "time": "2026-01-01T00:00:00"}',
         "rank_request.time", "timezone"),
        (b'{"type": "rank_request", "request_id": "r", "user_id": "u", "candidates": ["a", "a"]}',
         "rank_request.candidates", "repeat"),
        (b'{"type": "rank_request", "request_id": "r", "user_id": "u", "colour": "red"}',
         "rank_request.colour", "Extra inputs"),
        (b'{"type": "impression", "event_id": "e", "request_id": "r", "user_id": "u", "shown": []}',
         "impression.shown", "at least 1"),
        (b'{"type": "click", "event_id": "e", "request_id": "r", "user_id": "u", "item_id": "a", "reward": -1}',
         "click.reward", "greater than or equal"),
    ],
)
def test_bad_input_names_field_and_reason(raw: bytes, field: str, reason_part: str) -> None:
    with pytest.raises(EventDecodeError) as caught:
        decode_event(raw)
    assert caught.value.field == field
    assert reason_part in caught.value.reason


def test_item_text_joins_fields_in_key_order() -> None:
    item = Item(item_id="a", fields={"title": "Shoe", "description": "Red leather"})
    assert item.text() == "Red leather. Shoe"


def test_a_request_without_k_round_trips_without_it() -> None:
    """An omitted k stays omitted on the wire, so the receiver's scenario slate size applies."""
    plain = decode_event(encode_event(RankRequest(request_id="r", user_id="u")))
    assert isinstance(plain, RankRequest) and "k" not in plain.model_fields_set and plain.k == 10
    sized = decode_event(encode_event(RankRequest(request_id="r", user_id="u", k=3)))
    assert isinstance(sized, RankRequest) and "k" in sized.model_fields_set and sized.k == 3
