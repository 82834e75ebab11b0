"""Logged rounds: an event stream grouped into (request, impression, clicks) rounds, in log order.

A round opens at a `RankRequest` and collects the `Slate` (what the logging policy served,
with its propensities and candidates), the `Impression` and the `Click`s that carry its
request id until the next request arrives (or the log ends), or, given an attribution window,
until the log's event time has passed it (a replayed live log interleaves users: the next
request comes long before this one's clicks). `iter_log` yields, in log
order, `ItemBatch` (consecutive catalog items), `LoggedRound` (a closed round) and
`Feedback` (an impression or click that belongs to no open round: it is learned from but
not evaluated, e.g. a late click). `LogCounts` proves that every event was accounted for.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta

from online.events import Click, Impression, Item, RankRequest, Slate

AnyEvent = RankRequest | Slate | Impression | Click | Item


@dataclass(frozen=True)
class ItemBatch:
    """Consecutive catalog items of the log."""

    items: tuple[Item, ...]


@dataclass(frozen=True)
class Feedback:
    """An impression or click outside any open round (learned from, not evaluated)."""

    event: Impression | Click


@dataclass(frozen=True)
class LoggedRound:
    """One logged round: the request, what was shown (None when never logged), the clicks
    that arrived while the round was open and the served slate when the log holds it.
    index: 0-based round number."""

    index: int
    request: RankRequest
    impression: Impression | None
    clicks: tuple[Click, ...]
    slate: Slate | None = None

    def feedback(self) -> list[Impression | Click]:
        """The round's impression and clicks, in log order (impression first)."""
        out: list[Impression | Click] = [] if self.impression is None else [self.impression]
        return out + list(self.clicks)

    def rewards(self) -> dict[str, float]:
        """item id -> summed reward of the round's clicks."""
        totals: dict[str, float] = {}
        for click in self.clicks:
            totals[click.item_id] = totals.get(click.item_id, 0.0) + click.reward
        return totals


@dataclass
class LogCounts:
    """Events by kind. Invariant: events == items + requests + impressions + clicks + slates,
    and requests == rounds; rounds_evaluated counts rounds with an impression."""

    events: int = 0
    items: int = 0
    requests: int = 0
    impressions: int = 0
    clicks: int = 0
    slates: int = 0
    rounds: int = 0
    rounds_evaluated: int = 0
    rounds_without_impression: int = 0
    stray_feedback: int = 0

    def balanced(self) -> bool:
        """Whether every event is counted exactly once."""
        return (
            self.events == self.items + self.requests + self.impressions + self.clicks + self.slates
            and self.requests == self.rounds
            and self.rounds == self.rounds_evaluated + self.rounds_without_impression
        )


class _Open:
    def __init__(self, index: int, request: RankRequest) -> None:
        self.index = index
        self.request = request
        self.impression: Impression | None = None
        self.clicks: list[Click] = []
        self.slate: Slate | None = None

    def close(self) -> LoggedRound:
        return LoggedRound(self.index, self.request, self.impression, tuple(self.clicks), self.slate)


def iter_log(
    events: Iterable[AnyEvent], counts: LogCounts, max_rounds: int | None = None,
    attribution_s: float | None = None,
) -> Iterator[ItemBatch | LoggedRound | Feedback]:
    """Group events into steps (see the module doc), updating `counts` as it goes.

    max_rounds: stop after this many requests (the rest of the log is not read).
    attribution_s: how long a round stays open. None: until the next request (a log whose rounds
    follow one another: OBD, MIND, a single user's session). Seconds: until an event comes more
    than attribution_s of event time after the round's request (or the log ends), so a replayed
    live log, where other users' requests come between a request and its clicks, keeps every
    click with its round. Either way rounds are yielded in request order, and items and stray
    feedback as they come (ahead of rounds still open).
    A second impression for an open round is treated as stray feedback; a slate joins the
    open round of its request (a second one, or one for no open round, is only counted).
    """
    if max_rounds is not None and max_rounds < 1:
        raise ValueError(f"max_rounds: must be >= 1 or None, got {max_rounds}")
    if attribution_s is not None and not attribution_s >= 0:
        raise ValueError(f"attribution_s: must be >= 0 or None, got {attribution_s}")
    window = None if attribution_s is None else timedelta(seconds=attribution_s)
    pending_items: list[Item] = []
    opened: OrderedDict[str, _Open] = OrderedDict()  # request id -> open round, in request order

    def close(until: RankRequest | Impression | Click | Slate | None) -> Iterator[LoggedRound]:
        """Close the oldest open rounds: all (until None), or those `until`'s time is past."""
        while opened:
            request_id, first = next(iter(opened.items()))
            if until is not None and (window is None or until.time - first.request.time <= window):
                return
            del opened[request_id]
            closed = first.close()
            counts.rounds += 1
            if closed.impression is None:
                counts.rounds_without_impression += 1
            else:
                counts.rounds_evaluated += 1
            yield closed

    for event in events:
        if isinstance(event, RankRequest) and max_rounds is not None and counts.requests >= max_rounds:
            break
        counts.events += 1
        if isinstance(event, Item):
            counts.items += 1
            pending_items.append(event)
            continue
        if pending_items:
            yield ItemBatch(tuple(pending_items))
            pending_items = []
        yield from close(event)
        target = opened.get(event.request_id)
        if isinstance(event, RankRequest):
            counts.requests += 1
            if window is None or target is not None:  # the previous round, or one reusing this request id
                yield from close(None)
            opened[event.request_id] = _Open(counts.requests - 1, event)
        elif isinstance(event, Impression):
            counts.impressions += 1
            if target is not None and target.impression is None:
                target.impression = event
            else:
                counts.stray_feedback += 1
                yield Feedback(event)
        elif isinstance(event, Click):
            counts.clicks += 1
            if target is not None:
                target.clicks.append(event)
            else:
                counts.stray_feedback += 1
                yield Feedback(event)
        else:
            counts.slates += 1
            if target is not None and target.slate is None:
                target.slate = event
    if pending_items:
        yield ItemBatch(tuple(pending_items))
    yield from close(None)
