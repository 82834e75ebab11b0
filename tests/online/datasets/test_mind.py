"""MIND adapter on a small behaviors.tsv / news.tsv fixture."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from online.datasets import mind_events, read_mind_behaviors, read_mind_news
from online.events import Click, Impression, Item, RankRequest

T0 = datetime(2019, 11, 11, tzinfo=UTC)


def test_behaviors_parse(mind_files: tuple[Path, Path]) -> None:
    behaviors = list(read_mind_behaviors(mind_files[0]))
    assert [b.impression_id for b in behaviors] == ["1", "2", "3", "4"]
    first = behaviors[0]
    assert first.user_id == "U100" and first.history == ("N1", "N2")
    assert first.time == datetime(2019, 11, 11, 9, 5, 3, tzinfo=UTC)
    assert behaviors[1].time == datetime(2019, 11, 11, 12, 30, tzinfo=UTC) and behaviors[1].history == ()
    assert first.items == ("N10", "N11", "N12") and first.labels == (1, 0, 0)
    # a repeated news id is kept once, at its first position, clicked if any copy was
    assert behaviors[2].items == ("N12", "N11") and behaviors[2].labels == (1, 0)


def test_news_become_items(mind_files: tuple[Path, Path]) -> None:
    items = list(read_mind_news(mind_files[1], T0))
    assert [item.item_id for item in items] == ["N10", "N11", "N12"]
    assert items[0].fields == {"title": "Late winner", "abstract": "A goal in the last minute."}
    assert items[0].attributes == {"category": "sports", "subcategory": "football", "url": "https://example.com/10"}
    assert items[1].fields == {"title": "Summit ends"}
    assert items[2].fields["title"] == 'A recipe with "quotes"'
    assert all(item.time == T0 for item in items)


def test_events_in_file_order(mind_files: tuple[Path, Path]) -> None:
    events = list(mind_events(*mind_files))
    items, rest = events[:3], events[3:]
    assert all(isinstance(item, Item) for item in items)
    assert all(item.time == datetime(2019, 11, 11, 9, 5, 3, tzinfo=UTC) for item in items)
    kinds = [type(event).__name__ for event in rest]
    assert kinds == [
        "RankRequest", "Impression", "Click",
        "RankRequest", "Impression", "Click", "Click",
        "RankRequest", "Impression", "Click",
        "RankRequest", "Impression",
    ]
    request, impression, click = rest[:3]
    assert isinstance(request, RankRequest) and isinstance(impression, Impression) and isinstance(click, Click)
    assert request.request_id == "mind-1" and request.candidates == ("N10", "N11", "N12") and request.k == 3
    assert [(s.item_id, s.position, s.propensity) for s in impression.shown] == [
        ("N10", 0, None), ("N11", 1, None), ("N12", 2, None)
    ]
    assert (click.item_id, click.user_id, click.request_id) == ("N10", "U100", "mind-1")
    clicked = {(e.request_id, e.item_id) for e in rest if isinstance(e, Click)}
    assert clicked == {("mind-1", "N10"), ("mind-2", "N12"), ("mind-2", "N10"), ("mind-3", "N12")}
    ids = [e.event_id for e in rest if isinstance(e, Impression | Click)]
    ids += [e.request_id for e in rest if isinstance(e, RankRequest)]
    assert len(set(ids)) == len(ids) == len(rest)


def test_unlabelled_test_split(tmp_path: Path) -> None:
    path = tmp_path / "behaviors.tsv"
    path.write_text("9\tU1\t11/15/2019 10:00:00 PM\tN1\tN5 N6\n")
    (behavior,) = read_mind_behaviors(path)
    assert behavior.labels is None and behavior.items == ("N5", "N6")
    events = list(mind_events(path, scenario="mind-test"))
    assert [type(e).__name__ for e in events] == ["RankRequest", "Impression"]
    assert events[0].time == datetime(2019, 11, 15, 22, tzinfo=UTC)


def test_large_impressions_cap_k(tmp_path: Path) -> None:
    path = tmp_path / "behaviors.tsv"
    path.write_text("1\tU1\t11/15/2019 10:00:00 AM\t\t" + " ".join(f"N{j}-0" for j in range(150)) + "\n")
    request = next(mind_events(path))
    assert isinstance(request, RankRequest)
    assert request.k == 100 and request.candidates is not None and len(request.candidates) == 150


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("1\tU1\t2019-11-11 09:00\t\tN1-1", r"behaviors\.tsv:1: time"),
        ("1\tU1\t11/11/2019 9:05:03 AM\t\t", r":1: impressions: must not be empty"),
        ("1\tU1\t11/11/2019 9:05:03 AM\t\tN1-1 N2", r":1: impressions: mixes"),
        ("1\tU1\t11/11/2019 9:05:03 AM\t\tN1-2", r":1: impressions: bad entry 'N1-2'"),
        ("1\tU1\t11/11/2019 9:05:03 AM", r":1: <row>: expected at least 5"),
        ("1\t \t11/11/2019 9:05:03 AM\t\tN1-1", r":1: user_id: empty"),
    ],
)
def test_bad_behavior_lines(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "behaviors.tsv"
    path.write_text(line + "\n")
    with pytest.raises(ValueError, match=message):
        list(read_mind_behaviors(path))


def test_news_without_behaviors_needs_a_time(tmp_path: Path, mind_files: tuple[Path, Path]) -> None:
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    with pytest.raises(ValueError, match="item_time"):
        list(mind_events(empty, mind_files[1]))
    assert len(list(mind_events(empty, mind_files[1], item_time=T0))) == 3
