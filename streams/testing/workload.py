"""A fixed, seeded stream of items, requests, impressions and clicks for tests and benchmarks.

Impressions show items drawn by the generator (not the worker's slates), so the learned
state depends only on the workload, never on ranking randomness or timing: two runs over
the same workload must learn the same state. Event times are fixed (t0 + i seconds, UTC).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import numpy as np
from kafka import KafkaProducer

from online.events import Click, Impression, Item, RankRequest, ShownItem, encode_event
from streams.client import event_key
from streams.settings import StreamSettings
from streams.topics import TopicNames

T0 = datetime(2026, 1, 1, tzinfo=UTC)
WORDS = ("red", "blue", "green", "shoe", "hat", "coat", "lamp", "desk", "book", "song", "film", "game")


@dataclass(frozen=True)
class Workload:
    """Events of one run. impressions[i] and clicks belong to requests[i] (clicks: some)."""

    items: tuple[Item, ...]
    requests: tuple[RankRequest, ...]
    impressions: tuple[Impression, ...]
    clicks: tuple[Click, ...]

    def feedback(self) -> list[Impression | Click]:
        """Impressions and clicks interleaved in request order (impression, then its click)."""
        clicks = {click.request_id: click for click in self.clicks}
        out: list[Impression | Click] = []
        for impression in self.impressions:
            out.append(impression)
            if impression.request_id in clicks:
                out.append(clicks[impression.request_id])
        return out

    @property
    def exposures(self) -> int:
        """Shown items over all impressions (what the population's n_exposures must reach)."""
        return sum(len(impression.shown) for impression in self.impressions)


def make_workload(n_users: int = 40, n_items: int = 30, n_requests: int = 1000, shown: int = 3,
                  click_rate: float = 0.5, seed: int = 0, prefix: str = "", propensities: bool = False) -> Workload:
    """A workload: users "u0".., items "i0".., requests "r0".. (ids prefixed with `prefix`).

    Each request shows `shown` distinct random items; with probability click_rate the user
    clicks one of them, preferring items whose index is congruent to the user's (mod 3). With
    `propensities`, each shown item carries a logging propensity k / 64 (k drawn from 1..64 by a
    generator of its own: what the default policy's 64 draws log; the events are otherwise those
    of the same workload without them).
    """
    if not (0 < shown <= n_items and 0.0 <= click_rate <= 1.0 and n_users > 0 and n_requests > 0):
        raise ValueError("make_workload: need 0 < shown <= n_items, 0 <= click_rate <= 1, n_users, n_requests > 0")
    rng = np.random.default_rng(seed)
    propensity_rng = np.random.default_rng([seed, 1]) if propensities else None
    items = tuple(
        Item(item_id=f"{prefix}i{n}", fields={"title": " ".join(rng.choice(WORDS, 3)) + f" {n}"}, time=T0)
        for n in range(n_items)
    )
    requests: list[RankRequest] = []
    impressions: list[Impression] = []
    clicks: list[Click] = []
    for step in range(n_requests):
        user = int(rng.integers(n_users))
        user_id, request_id = f"{prefix}u{user}", f"{prefix}r{step}"
        time = T0 + timedelta(seconds=step)
        requests.append(RankRequest(request_id=request_id, user_id=user_id, k=shown, time=time))
        chosen = rng.choice(n_items, size=shown, replace=False)
        impressions.append(Impression(
            event_id=f"{prefix}e{step}", request_id=request_id, user_id=user_id, time=time,
            shown=tuple(ShownItem(item_id=items[int(n)].item_id, position=p, propensity=_logged(propensity_rng))
                        for p, n in enumerate(chosen)),
        ))
        if rng.random() < click_rate:
            liked = [int(n) for n in chosen if int(n) % 3 == user % 3]
            pick = liked[0] if liked else int(chosen[int(rng.integers(shown))])
            clicks.append(Click(event_id=f"{prefix}c{step}", request_id=request_id, user_id=user_id,
                                item_id=items[pick].item_id, time=time + timedelta(milliseconds=500)))
    return Workload(items, tuple(requests), tuple(impressions), tuple(clicks))


def _logged(rng: np.random.Generator | None) -> float | None:
    """A logging propensity k / 64, k drawn from 1..64 (what the default policy's 64 draws log:
    at most 6 decimals), or None without a generator."""
    return None if rng is None else int(rng.integers(1, 65)) / 64


def publish(settings: StreamSettings, events: Iterable[Item | RankRequest | Impression | Click],
            producer: KafkaProducer | None = None) -> int:
    """Send events to their topics keyed like SlatestreamClient does, flush; returns how many."""
    names = TopicNames.from_settings(settings)
    own = producer is None
    producer = producer or KafkaProducer(**settings.kafka_client_config(), acks="all", linger_ms=5,
                                         batch_size=256 * 1024)
    count = 0
    try:
        for event in events:
            producer.send(names.for_event_type(event.type), key=event_key(event), value=encode_event(event))
            count += 1
        producer.flush()
    finally:
        if own:
            producer.close()
    return count


def split(events: Sequence[Impression | Click], parts: int) -> list[list[Impression | Click]]:
    """events cut into `parts` consecutive chunks of (nearly) equal size."""
    bounds = np.linspace(0, len(events), parts + 1).astype(int)
    return [list(events[a:b]) for a, b in pairwise(bounds)]
