"""A served run through `WorkerCore` without Kafka, for tests and benchmarks: requests ranked by
the core, impressions of the slates it served (each item's propensity copied, as a service does
with `streams.client.impression_for`) and clicks by a seeded rule.

    make = RecordMaker()
    core.add_items(item_records(make, 40))
    slates = ranked(core, request_records(make, 200, n_users=20, k=5))
    core.learn(feedback_records(make, slates, seed=1))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np

from online.events import Click, Impression, Item, RankRequest, Slate, encode_event
from streams.client import click_for, impression_for
from streams.testing.workload import T0, WORDS
from streams.worker.core import WorkerCore
from streams.worker.records import Record


@dataclass
class RecordMaker:
    """Records of one partition, offsets counted per topic role."""

    partition: int = 0
    offsets: dict[str, int] = field(default_factory=dict)

    def __call__(self, kind: str, event: RankRequest | Impression | Click | Item) -> Record:
        offset = self.offsets.get(kind, 0)
        self.offsets[kind] = offset + 1
        key = event.item_id if isinstance(event, Item) else event.user_id
        return Record(kind, f"t.{kind}", self.partition, offset, key.encode(), encode_event(event))


def item_records(make: RecordMaker, n_items: int, seed: int = 0) -> list[Record]:
    """Items "i0".. with three random words and their number as title."""
    rng = np.random.default_rng(seed)
    return [make("items", Item(item_id=f"i{n}", fields={"title": " ".join(rng.choice(WORDS, 3)) + f" {n}"}, time=T0))
            for n in range(n_items)]


def request_records(make: RecordMaker, n: int, n_users: int, k: int, seed: int = 0, start: int = 0,
                    candidates: Sequence[str] | None = None) -> list[Record]:
    """n requests "r<start>".. of users "u0".. drawn at random, one second apart (event time)."""
    rng = np.random.default_rng([seed, start])
    out = []
    for step in range(start, start + n):
        user = f"u{int(rng.integers(n_users))}"
        out.append(make("requests", RankRequest(request_id=f"r{step}", user_id=user, k=k,
                                                time=T0 + timedelta(seconds=step),
                                                candidates=None if candidates is None else tuple(candidates))))
    return out


def ranked(core: WorkerCore, requests: Sequence[Record]) -> list[Slate]:
    """The slates the core serves for `requests` (AssertionError if one is refused)."""
    answers, dead = core.rank(requests)
    assert not dead, [letter.reason for letter in dead]
    return [answer for answer in answers if isinstance(answer, Slate)]


def feedback_records(make: RecordMaker, slates: Sequence[Slate], seed: int = 0,
                     click_rate: float = 0.6) -> list[Record]:
    """Per slate its whole impression (1 s after the request) and, with probability click_rate,
    one click (2 s after), on an item whose number is congruent to the user's mod 3 when the slate
    holds one (else the top item)."""
    rng = np.random.default_rng(seed)
    out = []
    for slate in slates:
        out.append(make("impressions", impression_for(slate, time=slate.time + timedelta(seconds=1))))
        if rng.random() < click_rate:
            user = int(slate.user_id[1:])
            liked = [i.item_id for i in slate.items if int(i.item_id[1:]) % 3 == user % 3]
            item = liked[0] if liked else slate.items[0].item_id
            out.append(make("clicks", click_for(slate, item, time=slate.time + timedelta(seconds=2))))
    return out
