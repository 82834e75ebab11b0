"""The embedded runner: feeds an event stream through the engine, in process, no Kafka.

Items are embedded and added to the catalog, rank requests are answered with slates
(handed to `emit`), impressions and clicks are learned in batches of `batch_size`
(flushed before any request so a slate always sees the feedback logged before it).
Events that cannot be processed are handed to `reject` with their reason and never stop
the run; `RunCounts` proves counts in = processed + rejected. The runner drives an
`Engine`, or a `ScenarioRouter` (online.scenarios) that serves every configured scenario.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from online.engine import ObserveResult, RankError
from online.events import Click, Impression, Item, RankRequest, Slate

Event = RankRequest | Slate | Impression | Click | Item
Embed = Callable[[Sequence[Item]], npt.NDArray[np.float32]]


class Ranker(Protocol):
    """What the runner drives: an Engine or a ScenarioRouter."""

    def add_items(self, items: Sequence[Item], vectors: npt.NDArray[np.float32]) -> None: ...

    def rank(self, request: RankRequest) -> Slate: ...

    def observe(self, events: Sequence[Impression | Click]) -> ObserveResult: ...


@dataclass
class RunCounts:
    """Events seen, by outcome. Invariant: seen == ranked + learned + items + ignored + rejected."""

    seen: int = 0
    ranked: int = 0
    learned: int = 0
    items: int = 0
    ignored: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def balanced(self) -> bool:
        return self.seen == self.ranked + self.learned + self.items + self.ignored + self.rejected


class EmbeddedRunner:
    """Drives an Engine (or a ScenarioRouter) from an iterable of events (see module doc)."""

    def __init__(
        self,
        engine: Ranker,
        embed: Embed,
        emit: Callable[[Slate], None] | None = None,
        reject: Callable[[Event, str], None] | None = None,
        batch_size: int = 1000,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.engine = engine
        self.embed = embed
        self.emit = emit or (lambda slate: None)
        self.reject = reject or (lambda event, reason: None)
        self.batch_size = batch_size
        self.counts = RunCounts()
        self._feedback: list[Impression | Click] = []
        self._items: list[Item] = []

    def run(self, events: Iterable[Event]) -> RunCounts:
        """Process every event, flush what is buffered, return the counts."""
        for event in events:
            self.process(event)
        self.flush()
        return self.counts

    def process(self, event: Event) -> None:
        self.counts.seen += 1
        if isinstance(event, Item):
            self._items.append(event)
            if len(self._items) >= self.batch_size:
                self._flush_items()
        elif isinstance(event, Impression | Click):
            self._feedback.append(event)
            if len(self._feedback) >= self.batch_size:
                self._flush_feedback()
        elif isinstance(event, RankRequest):
            self.flush()
            try:
                slate = self.engine.rank(event)
            except RankError as error:
                self._reject(event, str(error))
                return
            self.counts.ranked += 1
            self.emit(slate)
        else:  # a logged Slate: already answered, nothing to learn from
            self.counts.ignored += 1

    def flush(self) -> None:
        self._flush_items()
        self._flush_feedback()

    def _flush_items(self) -> None:
        if self._items:
            self.engine.add_items(self._items, self.embed(self._items))
            self.counts.items += len(self._items)
            self._items = []

    def _flush_feedback(self) -> None:
        if not self._feedback:
            return
        result = self.engine.observe(self._feedback)
        self.counts.learned += len(self._feedback) - len(result.rejected)
        for event, reason in result.rejected:
            assert isinstance(event, Impression | Click)  # one of self._feedback
            self._reject(event, reason)
        self._feedback = []

    def _reject(self, event: Event, reason: str) -> None:
        self.counts.rejected += 1
        kind = reason.split(" ")[0] if reason else "error"
        self.counts.reasons[kind] = self.counts.reasons.get(kind, 0) + 1
        self.reject(event, reason)
