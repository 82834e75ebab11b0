"""`live_totals`: the C-level sums of a one-scenario list equal the per-event loop's, bit for bit."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from online.events import Click, Impression, ShownItem
from online.wire import FeedbackEvent, WireClick
from streams.worker.feedback_fold import _by_scenario, live_totals

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _events(rng: np.random.Generator, n: int, scenarios: list[str]) -> list[FeedbackEvent]:
    events: list[FeedbackEvent] = []
    for step in range(n):
        scenario = scenarios[int(rng.integers(len(scenarios)))]
        if rng.random() < 0.5:
            shown = tuple(ShownItem(item_id=f"i{p}", position=p) for p in range(int(rng.integers(1, 6))))
            events.append(Impression(event_id=f"e{step}", request_id="r", user_id="u", scenario=scenario,
                                     shown=shown, time=T0))
        elif rng.random() < 0.5:
            events.append(Click(event_id=f"c{step}", request_id="r", user_id="u", item_id="i0", scenario=scenario,
                                reward=float(rng.choice([0.1, 1 / 3, 1e-9, 1e6, 2.5])), time=T0))
        else:
            events.append(WireClick(type="click", event_id=f"w{step}", request_id="r", user_id="u", item_id="i0",
                                    scenario=scenario, reward=0.1, time=T0))
    return events


@pytest.mark.parametrize("n", [0, 1, 10, 500])
def test_one_scenarios_totals_equal_the_loops_to_the_last_bit(n: int) -> None:
    """Rewards such as 0.1 summed one at a time differ from a compensated sum (Python 3.12's
    `sum` of floats) in the last bit: the one-scenario path adds them in event order too."""
    events = _events(np.random.default_rng(n), n, ["feed"])
    totals, n_clicks = live_totals(events)
    assert totals == _by_scenario(events)
    assert n_clicks == sum(event.type == "click" for event in events)


def test_ten_clicks_of_a_tenth_sum_as_the_loop_does() -> None:
    clicks = [WireClick(type="click", event_id=f"c{n}", request_id="r", user_id="u", item_id="i0", reward=0.1,
                        time=T0) for n in range(10)]
    assert live_totals(clicks) == ({"default": (0.0, 0.9999999999999999)}, 10)


def test_a_mixed_list_is_summed_per_scenario() -> None:
    events = _events(np.random.default_rng(7), 300, ["feed", "ad_slot", "email"])
    totals, _ = live_totals(events)
    assert totals == _by_scenario(events) and set(totals) == {"feed", "ad_slot", "email"}
