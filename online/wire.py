"""Fast decoding of feedback events (impressions, clicks) for the worker's hot path.

`decode_event` (pydantic) costs ~20 us per 280-byte impression on the 2-core machine,
about a fifth of the worker's whole per-event budget. `decode_feedback_fast` decodes with
msgspec into frozen structs (`WireImpression`, `WireClick`) in ~3 us, or returns None for
a record msgspec or its checks cannot vouch for; the caller then uses `decode_event`, which
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
from datetime import UTC, datetime
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
    pydantic truncates). A search of the whole record first (~0.3 us); only a record where some
    7-digit fraction shows (mostly a float's digits: propensities, rewards, context values) has
    its time's own text decoded to tell, instead of going to pydantic (2-3x the time)."""
    if _LONG_FRACTION.search(raw) is None:
        return False
    return _LONG_FRACTION_TEXT.search(_TIME_TEXT.decode(raw).time) is not None


FeedbackEvent: TypeAlias = Impression | Click | WireImpression | WireClick
"""A feedback event as the learning code reads it: pydantic-decoded or wire-decoded."""

_DECODERS: dict[str, msgspec.json.Decoder[WireImpression] | msgspec.json.Decoder[WireClick]] = {
    "impression": msgspec.json.Decoder(WireImpression),
    "click": msgspec.json.Decoder(WireClick),
}


def _unstripped(first: str, second: str, third: str = "x", fourth: str = "x") -> bool:
    """Whether any text has leading or trailing whitespace (pydantic strips it: let it).
    `str.strip` returns the very object when there is nothing to strip."""
    return (first.strip() is not first or second.strip() is not second or third.strip() is not third
            or fourth.strip() is not fourth)


def decode_feedback_fast(raw: bytes, expected: Literal["impression", "click"]) -> WireImpression | WireClick | None:
    """The event when msgspec and the checks vouch for `raw`, else None: then decode it with
    `decode_event`, which accepts it or says what is wrong. Never raises: whatever goes wrong
    here (a time UTC cannot hold, ...) means "not vouched for"."""
    try:
        return _decode_checked(raw, expected)
    except Exception:  # decode_event then names the problem
        return None


def _decode_checked(raw: bytes, expected: Literal["impression", "click"]) -> WireImpression | WireClick | None:
    if _time_fraction_too_long(raw):
        return None
    event = _DECODERS[expected].decode(raw)  # msgspec's errors are caught by the caller
    if _unstripped(event.event_id, event.request_id, event.user_id, event.scenario):
        return None
    if isinstance(event, WireImpression):
        if len({item.item_id for item in event.shown}) != len(event.shown):
            return None
        if event.context is not None and any(key.strip() is not key for key in event.context):
            return None
    elif _unstripped(event.item_id, event.reward_kind):
        return None
    if event.time.tzinfo is not UTC:
        return msgspec.structs.replace(event, time=event.time.astimezone(UTC))
    return event
