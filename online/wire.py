"""Fast decoding of feedback events (impressions, clicks) for the worker's hot path.

`decode_event` (pydantic) costs ~20 us per 280-byte impression on the 2-core machine,
about a fifth of the worker's whole per-event budget. `decode_feedback_many` (a batch: the
worker's path) and `decode_feedback_fast` (one record) decode with msgspec into frozen structs
(`WireImpression`, `WireClick`) in ~2.5 us a record, or give None for a record msgspec or its
checks cannot vouch for; the caller then uses `decode_event`, which
either accepts it (with pydantic's coercions: numbers as strings, whitespace
stripping, ...) or raises `EventDecodeError` with the reason. So:

- what this module accepts, `decode_event` accepts too, with equal field values (times in
  UTC); tests/online/test_wire.py checks that over a seeded fuzz corpus;
- what it does not vouch for (None) goes to `decode_event`, so errors read the same.

The structs carry the same field names as `Impression`/`Click` and a literal `type`, so
code that reads feedback (`Engine.feedback_batch`) takes either kind (`FeedbackEvent`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from operator import attrgetter
from typing import Annotated, Literal, TypeAlias

import msgspec

from online.events import MAX_CONTEXT_MAGNITUDE, MAX_POSITION, Click, Impression

_Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
_Probability = Annotated[float, msgspec.Meta(gt=0.0, le=1.0)]
_AwareTime = Annotated[datetime, msgspec.Meta(tz=True)]
_ContextValue = Annotated[float, msgspec.Meta(ge=-MAX_CONTEXT_MAGNITUDE, le=MAX_CONTEXT_MAGNITUDE)]
"""Finite by its bounds (msgspec refuses NaN against them), as `online.events.ContextValue`."""
_LONG_FRACTION = re.compile(rb"\.\d{7}")
"""More than 6 fractional digits somewhere in a record: a float's (a propensity 0.3333333333333333
from a slate) or a time's (msgspec rounds sub-microseconds, pydantic truncates)."""
_LONG_FRACTION_TEXT = re.compile(r"\.\d{7}")


class WireShownItem(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """`ShownItem`: an item the user saw at `position` (0 = top), logging propensity if known."""

    item_id: _Identifier
    position: Annotated[int, msgspec.Meta(ge=0, le=MAX_POSITION)]
    propensity: _Probability | None = None


class WireImpression(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True, gc=False):
    """`Impression` as decoded by msgspec (same fields; `shown` holds `WireShownItem`s)."""

    type: Literal["impression"]
    event_id: _Identifier
    request_id: _Identifier
    user_id: _Identifier
    shown: Annotated[tuple[WireShownItem, ...], msgspec.Meta(min_length=1)]
    time: _AwareTime
    schema_version: Literal[1] = 1
    scenario: _Identifier = "default"
    context: dict[str, _ContextValue] | None = None


class WireClick(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True, gc=False):
    """`Click` as decoded by msgspec (same fields)."""

    type: Literal["click"]
    event_id: _Identifier
    request_id: _Identifier
    user_id: _Identifier
    item_id: _Identifier
    time: _AwareTime
    schema_version: Literal[1] = 1
    scenario: _Identifier = "default"
    reward_kind: _Identifier = "click"
    reward: Annotated[float, msgspec.Meta(ge=0.0, le=1e6)] = 1.0


class _TimeText(msgspec.Struct, gc=False):
    """Only an event's time, as the text it came as (every other field skipped)."""

    time: str


_TIME_TEXT = msgspec.json.Decoder(_TimeText)


def _time_fraction_too_long(raw: bytes) -> bool:
    """Whether the record's time has more than 6 fractional digits (msgspec would round what
    pydantic truncates): its time's own text decoded, for a record where `_LONG_FRACTION` shows
    (mostly a float's digits: propensities, rewards, context values), instead of sending the
    record to pydantic (2-3x the time). The search of the whole record (~0.2 us) is the caller's."""
    return _LONG_FRACTION_TEXT.search(_TIME_TEXT.decode(raw).time) is not None


_ITEM_ID = attrgetter("item_id")

FeedbackEvent: TypeAlias = Impression | Click | WireImpression | WireClick
"""A feedback event as the learning code reads it: pydantic-decoded or wire-decoded."""

_DECODERS: dict[str, msgspec.json.Decoder[WireImpression] | msgspec.json.Decoder[WireClick]] = {
    "impression": msgspec.json.Decoder(WireImpression),
    "click": msgspec.json.Decoder(WireClick),
}


def decode_feedback_fast(raw: bytes, expected: Literal["impression", "click"]) -> WireImpression | WireClick | None:
    """The event when msgspec and the checks vouch for `raw`, else None: then decode it with
    `decode_event`, which accepts it or says what is wrong. Never raises: whatever goes wrong
    here (a time UTC cannot hold, ...) means "not vouched for". (`decode_feedback_many` of one.)"""
    return decode_feedback_many([raw], [expected])[0]


def decode_feedback_many(values: Sequence[bytes], expected: Sequence[Literal["impression", "click"]],
                         ) -> list[WireImpression | WireClick | None]:
    """`decode_feedback_fast` of each value as the kind at the same place in `expected` (a
    sequence of kinds as long as `values`: ValueError otherwise), in order, in one call (one
    frame a batch, not three a record). Never raises for a value, whatever its bytes."""
    events: list[WireImpression | WireClick | None] = []
    for raw, kind in zip(values, expected, strict=True):
        try:
            if _LONG_FRACTION.search(raw) is not None and _time_fraction_too_long(raw):
                events.append(None)
                continue
            event = _DECODERS[kind].decode(raw)
            events.append((event if event.time.tzinfo is UTC else _in_utc(event)) if _vouched(event) else None)
        except Exception:  # decode_event then names the problem
            events.append(None)
    return events


def _vouched(event: WireImpression | WireClick) -> bool:
    """Whether pydantic would read the decoded event with the same values: no text with leading
    or trailing whitespace (pydantic strips it; `str.strip` returns the very object when there
    is nothing to strip), no item shown twice, no context key with whitespace around it."""
    if (event.event_id.strip() is not event.event_id or event.request_id.strip() is not event.request_id
            or event.user_id.strip() is not event.user_id or event.scenario.strip() is not event.scenario):
        return False
    if isinstance(event, WireImpression):
        shown = event.shown
        return len(set(map(_ITEM_ID, shown))) == len(shown) and (
            event.context is None or all(key.strip() is key for key in event.context))
    return event.item_id.strip() is event.item_id and event.reward_kind.strip() is event.reward_kind


def _in_utc(event: WireImpression | WireClick) -> WireImpression | WireClick:
    """A copy of the event with its time converted to UTC (the same instant)."""
    return msgspec.structs.replace(event, time=event.time.astimezone(UTC))
