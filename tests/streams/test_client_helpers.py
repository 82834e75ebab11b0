"""impression_for / click_for: an impression carries exactly the slate's positions and propensities."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from online.events import Slate, SlateItem, decode_event, encode_event
from streams.client import click_for, impression_for

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def random_slate(seed: int, size: int = 8) -> Slate:
    """A slate with random ids, shuffled positions and random propensities in (0, 1]."""
    rng = np.random.default_rng(seed)
    positions = rng.permutation(size)
    items = tuple(
        SlateItem(item_id=f"n-{rng.integers(10**9)}-{n}", position=int(positions[n]), score=float(rng.normal()),
                  mean=float(rng.normal()), std=float(rng.random()), explored=bool(rng.random() < 0.3),
                  propensity=float(rng.uniform(1e-6, 1.0)))
        for n in range(size)
    )
    return Slate(request_id=f"r-{seed}", user_id=f"u-{seed}", scenario="front_page", items=items,
                 policy="linear_ts", policy_version="linear_ts-1", time=T0)


@pytest.mark.parametrize("seed", range(5))
def test_the_whole_slate_copies_every_position_and_propensity(seed: int) -> None:
    slate = random_slate(seed)
    impression = impression_for(slate, event_id="e1", time=T0)
    expected = {item.item_id: (item.position, item.propensity) for item in slate.items}
    got = {shown.item_id: (shown.position, shown.propensity) for shown in impression.shown}
    assert got == expected  # exact floats, not approximately
    assert [shown.position for shown in impression.shown] == sorted(expected[i][0] for i in expected)
    assert (impression.request_id, impression.user_id, impression.scenario, impression.event_id, impression.time) \
        == (slate.request_id, slate.user_id, "front_page", "e1", T0)
    again = decode_event(encode_event(impression))  # the propensities survive the wire unchanged
    assert again == impression


def test_top_n_and_named_items_keep_their_slate_positions() -> None:
    slate = random_slate(7)
    by_position = sorted(slate.items, key=lambda item: item.position)
    top3 = impression_for(slate, shown=3)
    assert [(s.item_id, s.position, s.propensity) for s in top3.shown] == \
        [(i.item_id, i.position, i.propensity) for i in by_position[:3]]
    named = [by_position[5].item_id, by_position[1].item_id]
    picked = impression_for(slate, shown=named)
    assert [(s.item_id, s.position, s.propensity) for s in picked.shown] == \
        [(i.item_id, i.position, i.propensity) for i in (by_position[1], by_position[5])]
    assert picked.event_id == f"imp-{slate.request_id}"


@pytest.mark.parametrize("shown", [0, 9, ["nope"], ["x", "x"], []])
def test_shown_outside_the_slate_is_refused(shown: object) -> None:
    slate = random_slate(1)
    if shown == ["x", "x"]:
        shown = [slate.items[0].item_id] * 2
    with pytest.raises(ValueError, match="shown"):
        impression_for(slate, shown=shown)  # type: ignore[arg-type]


def test_click_for_copies_the_request_and_refuses_unknown_items() -> None:
    slate = random_slate(2)
    item = slate.items[3].item_id
    click = click_for(slate, item, time=T0)
    assert (click.request_id, click.user_id, click.scenario, click.item_id, click.reward) == \
        (slate.request_id, slate.user_id, slate.scenario, item, 1.0)
    assert click.event_id == f"click-{slate.request_id}-{item}"
    with pytest.raises(ValueError, match="not in the slate"):
        click_for(slate, "other")
