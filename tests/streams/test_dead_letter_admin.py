"""LetterFilter, the oldest-first limit and the re-queue refusals, without a broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from online.events import EventDecodeError
from streams.dead_letter import DeadLetter
from streams.dead_letter_admin import LetterFilter, StoredLetter, _keep, refusal, topic_name
from streams.settings import StreamSettings

T0 = datetime(2026, 5, 1, tzinfo=UTC)


def letter(raw: bytes = b"{bad", *, topic: str = "slatestream.clicks", minutes: int = 0, key: str | None = "u1",
           error: BaseException | None = None, keep: int = 1024) -> DeadLetter:
    return DeadLetter.from_error(raw, topic=topic, partition=1, offset=7, key=key,
                                 error=error or EventDecodeError("<json>", "Invalid JSON"),
                                 time=T0 + timedelta(minutes=minutes), max_original_bytes=keep)


def test_filter_conditions() -> None:
    bad_json = letter()
    scenario = letter(b"{}", topic="slatestream.requests", minutes=10, error=KeyError("unknown scenario 'x'"))
    assert LetterFilter().accepts(bad_json) and LetterFilter().accepts(scenario)
    assert [LetterFilter(source_topic="slatestream.clicks").accepts(x) for x in (bad_json, scenario)] == [True, False]
    assert [LetterFilter(error_type="KeyError").accepts(x) for x in (bad_json, scenario)] == [False, True]
    assert [LetterFilter(reason="SCENARIO").accepts(x) for x in (bad_json, scenario)] == [False, True]
    assert [LetterFilter(reason="<json>").accepts(x) for x in (bad_json, scenario)] == [True, False]  # the field
    window = LetterFilter(since=T0 + timedelta(minutes=5), until=T0 + timedelta(minutes=10))
    assert [window.accepts(x) for x in (bad_json, scenario)] == [False, False]  # until is exclusive
    window = LetterFilter(since=T0, until=T0 + timedelta(minutes=11))
    assert [window.accepts(x) for x in (bad_json, scenario)] == [True, True]
    with pytest.raises(ValueError, match="before"):
        LetterFilter(since=T0, until=T0)
    with pytest.raises(ValueError, match="timezone"):
        LetterFilter(since=datetime(2026, 1, 1))  # noqa: DTZ001 - the refused naive time


def test_limit_keeps_the_oldest_in_any_arrival_order() -> None:
    stored = [StoredLetter(n % 3, n, letter(minutes=(n * 7) % 20)) for n in range(20)]
    kept: list = []
    for tie, one in enumerate(reversed(stored)):
        _keep(kept, one, 5, tie)
    oldest = sorted(stored, key=StoredLetter.sort_key)[:5]
    assert sorted((entry[2] for entry in kept), key=StoredLetter.sort_key) == oldest


def test_refusals() -> None:
    assert refusal(letter(), {0, 1}) is None
    assert "truncated" in (refusal(letter(b"x" * 100, keep=10), {0, 1}) or "")
    assert "cut" in (refusal(letter(key="k" * 5000), {0, 1}) or "")
    assert "does not exist" in (refusal(letter(), None) or "")
    assert "no partition 1" in (refusal(letter(), {0}) or "")


def test_short_topic_names() -> None:
    settings = StreamSettings(topic_prefix="news.")
    assert [topic_name(settings, t) for t in ("clicks", "control", "news.items", "other")] == \
        ["news.clicks", "news.control", "news.items", "other"]
