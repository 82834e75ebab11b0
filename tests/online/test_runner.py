"""The embedded runner: every event accounted for, feedback learned before later requests."""

from datetime import UTC, datetime, timedelta

import numpy as np

from encoders.hashing import HashingEncoder
from online.catalog import Catalog
from online.engine import Engine
from online.events import Click, Impression, Item, RankRequest, ShownItem, Slate
from online.policies.arms import BernoulliThompsonSampling
from online.runner import EmbeddedRunner
from online.state import InMemoryStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ENCODER = HashingEncoder(dim=8)


def embed(items: list[Item]) -> np.ndarray:
    return ENCODER.encode([i.text() for i in items])


def test_counts_balance_and_bad_events_are_rejected_not_fatal() -> None:
    engine = Engine(BernoulliThompsonSampling(), InMemoryStore(), Catalog(dim=8), np.random.default_rng(0))
    slates: list[Slate] = []
    rejected: list[str] = []
    events = [
        *(Item(item_id=f"i{n}", fields={"title": f"thing {n}"}, time=T0) for n in range(5)),
        RankRequest(request_id="r1", user_id="u", k=3, time=T0),
        Impression(event_id="e1", request_id="r1", user_id="u", time=T0,
                   shown=(ShownItem(item_id="i1", position=0),)),
        Click(event_id="c1", request_id="r1", user_id="u", item_id="i1", time=T0 + timedelta(seconds=2)),
        Click(event_id="c2", request_id="r1", user_id="u", item_id="ghost", time=T0),
        RankRequest(request_id="r2", user_id="u", candidates=("nope",), time=T0),
        RankRequest(request_id="r3", user_id="u", candidates=("i1", "i2"), k=2, time=T0),
    ]
    runner = EmbeddedRunner(engine, embed, slates.append, lambda e, reason: rejected.append(reason), batch_size=100)
    counts = runner.run(events)
    assert counts.balanced() and counts.seen == len(events)
    assert (counts.items, counts.ranked, counts.learned, counts.rejected) == (5, 2, 2, 2)
    assert any("ghost" in reason for reason in rejected)
    assert any("no candidate" in reason for reason in rejected)
    # the click on i1 was learned before r3 was ranked: i1's posterior mean is higher
    means = {item.item_id: item.mean for item in slates[-1].items}
    assert means["i1"] > means["i2"]
