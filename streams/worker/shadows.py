"""The worker's shadow policies: learned on the feedback of the scenarios they shadow, scored live
on the served slates, never served (docs/worker.md, "Shadow policies").

`WorkerCore` builds one `WorkerShadows` when the configuration declares shadows and calls it at
four points: a served slate (`on_slate`: queued, scored later so that serving does not wait), a
partition's learned feedback (`learn`: the queue is scored first, so a shadow is always scored on
a round before it learns the round's feedback; then the live windows join the feedback; then each
shadow learns), a forget (`forget`) and a rebalance (`partitions_changed`). Per partition each
shadow is an `Engine` over the partition's state table, its keys under `shadow/<name>/`
(`online.shadows`), learned with the same applied-offsets rule as the served policies
(`learn_once`), so its state is changelogged, recovered after a restart and never counts an event
twice. Per declared scenario one `online.evaluation.live.LiveWindow` scores the shadows covering
it (pooled over the worker's partitions; soft state: a restart starts it empty). Nothing here can
change a served slate: the shadows draw from their own generators and every failure is caught,
counted and logged.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from online.catalog import Catalog
from online.config import SlatestreamConfig
from online.engine import Engine, RankError
from online.evaluation.assessment import ReliabilityRule
from online.evaluation.live import ClosedRound, LiveWindow, score_shadow, standings
from online.evaluation.versus import MIN_DIFFERENCE
from online.events import RankRequest, Slate
from online.features import FeatureMap
from online.request_text import TextEmbed
from online.scenarios import ScenarioRouter
from online.shadows import Shadow, ShadowEngines, shadow_policy, shadow_scenarios
from online.wire import FeedbackEvent
from streams.worker.records import Record
from streams.worker.table_store import AppliedOffsets, TableStore

log = logging.getLogger("slatestream.worker")


class CoreParts(Protocol):
    """What `WorkerShadows` reads from its `WorkerCore`."""

    config: SlatestreamConfig
    catalog: Catalog
    seed: int
    features: FeatureMap | None
    embed_text: TextEmbed | None
    embedding_version: Callable[[], str] | None

    def store(self, partition: int) -> TableStore: ...

    def router(self, partition: int) -> ScenarioRouter: ...


@dataclass
class ShadowCounts:
    """Served slates queued for scoring, scored, dropped (the queue full, or a rebalance), and
    failures (scoring or learning a shadow raised: logged, never a stop)."""

    queued: int = 0
    scored: int = 0
    dropped: int = 0
    failed: int = 0


def learn_once(store: TableStore, shadow: Shadow, decoded: Sequence[tuple[Record, FeedbackEvent]],
               duplicates: set[int], topics: Sequence[str]) -> None:
    """Fold a partition's feedback into a shadow's states, skipping what each already holds.

    The served policies' rule (`WorkerCore._learn_engine`) on the shadow's own keys: every state
    value carries the offsets it includes; a user's state learns the events past its offsets, the
    population state those past its own; a user with no value starts at the population's
    offsets. duplicates: ids of the events the feedback path found to be a producer's duplicate
    (their offsets pass, nothing is learned). Keys a replay skipped are written again so the
    changelog holds what the local store holds.
    """
    engine, prefix = shadow.engine, shadow.prefix
    topic_of = {kind: index for index, kind in enumerate(topics)}
    global_key = prefix + engine.global_key
    global_done = store.offsets_of(global_key)
    global_mark = dict(global_done)  # as of the record in hand: a record twice in a list counts once
    user_done: dict[str, AppliedOffsets] = {}
    user_events: list[FeedbackEvent] = []
    global_events: list[FeedbackEvent] = []
    replayed: set[str] = set()
    for record, event in decoded:
        topic = topic_of[record.kind]
        key = prefix + engine.user_key(event.user_id)
        done = user_done.get(key)
        if done is None:
            stored = store.applied_offsets(key)
            done = user_done[key] = dict(global_done if stored is None else stored)
        user_new = record.offset > done.get(topic, -1)
        global_new = record.offset > global_mark.get(topic, -1)
        if user_new:
            done[topic] = record.offset
        if global_new:
            global_mark[topic] = record.offset
        if id(event) in duplicates:
            continue
        if user_new:
            user_events.append(event)
        if global_new:
            global_events.append(event)
        if not (user_new and global_new):
            replayed.add(event.user_id)
    for key, done in user_done.items():
        store.stage_offsets(key, done)
    if global_mark != global_done:
        store.stage_offsets(global_key, global_mark)
    same = [id(e) for e in user_events] == [id(e) for e in global_events]
    engine.observe(user_events, None if same else global_events)
    for user_id in replayed:
        for key in shadow.user_keys(user_id):
            store.touch(key)
    if replayed:
        store.touch(global_key)


class WorkerShadows:
    """See the module doc. clock: monotonic seconds (the live windows' close delay)."""

    def __init__(self, core: CoreParts, topics: Sequence[str], clock: Callable[[], float] = time.monotonic) -> None:
        self.core = core
        self.config = core.config
        self.topics = tuple(topics)
        self.counts = ShadowCounts()
        self._engines: dict[int, ShadowEngines] = {}
        self._queue: deque[tuple[int, RankRequest, Slate]] = deque()
        self._failed: set[tuple[str, str]] = set()
        self.windows: dict[str, LiveWindow] = {}
        for scenario in self.config.scenarios:
            labels = [s.name for s in self.config.shadows if scenario in shadow_scenarios(self.config, s)]
            if labels:
                self.windows[scenario] = LiveWindow(labels, self.config.leaderboard, clock=clock)

    def engines(self, partition: int) -> ShadowEngines:
        """The partition's shadow engines, built on first use."""
        found = self._engines.get(partition)
        if found is None:
            core = self.core
            found = self._engines[partition] = ShadowEngines(
                self.config, core.store(partition), core.catalog, (core.seed, partition), shard=str(partition),
                features=core.features, embedding_version=core.embedding_version, embed_text=core.embed_text)
        return found

    def window(self, scenario: str) -> LiveWindow | None:
        """The live window of a request's or event's scenario (resolved), None when no shadow covers it."""
        try:
            return self.windows.get(self.config.resolve(scenario))
        except KeyError:
            return None

    def on_slate(self, partition: int, request: RankRequest, slate: Slate) -> None:
        """A served slate: queued for scoring (the oldest dropped beyond `max_pending`)."""
        if self.window(request.scenario) is None:
            return
        self._queue.append((partition, request, slate))
        self.counts.queued += 1
        while len(self._queue) > self.config.leaderboard.max_pending:
            self._queue.popleft()
            self.counts.dropped += 1

    def score_queued(self) -> None:
        """Score every queued slate for the shadows covering its scenario (before they learn more)."""
        while self._queue:
            partition, request, slate = self._queue.popleft()
            window = self.window(request.scenario)
            if window is None:
                continue
            try:
                shaped = self.core.router(partition).shape(request)  # k and candidates as served
                scores = {shadow.name: self._score(shadow.engine, shaped, slate)
                          for shadow in self.engines(partition).covering(request.scenario)}
                window.open(shaped, slate, self.core.catalog.index, scores)
                self.counts.scored += 1
            except Exception as error:  # a shadow never stops the worker
                self._failure("scoring", request.scenario, error)

    @staticmethod
    def _score(engine: Engine, request: RankRequest, slate: Slate) -> Any:
        try:
            return score_shadow(engine, request, slate)
        except RankError:
            return None  # unranked for this shadow (e.g. its candidates left the catalog)

    def learn(self, partition: int, store: TableStore, decoded: Sequence[tuple[Record, FeedbackEvent]],
              duplicates: set[int]) -> None:
        """A partition's learned feedback (in order; `duplicates`: ids of the events skipped as a
        producer's duplicates): score what is queued, join the feedback to the live windows, close
        what is due, then let each shadow learn the events of the scenarios it covers."""
        self.score_queued()
        for _, event in decoded:
            window = self.window(event.scenario)
            if window is not None and id(event) not in duplicates:
                window.observe(event)
        for window in self.windows.values():
            window.close_due()
        engines = self.engines(partition)
        covered: dict[str, set[str]] = {}  # scenario -> names of the shadows covering it
        for event_scenario in {event.scenario for _, event in decoded}:
            covered[event_scenario] = {shadow.name for shadow in engines.covering(event_scenario)}
        for shadow in engines.shadows:
            mine = [(record, event) for record, event in decoded if shadow.name in covered[event.scenario]]
            if not mine:
                continue
            try:
                learn_once(store, shadow, mine, duplicates, self.topics)
            except Exception as error:  # a shadow never stops the worker
                self._failure("learning", shadow.name, error)

    def forget(self, partition: int, user_id: str) -> None:
        """Delete the user's state in every shadow of the partition (tombstones in the changelog)."""
        store = self.core.store(partition)
        for key in self.engines(partition).forget(user_id):
            store.tombstone(key)

    def partitions_changed(self) -> None:
        """Partitions moved: drop the engines (another worker may write their state now) and the
        slates not scored yet; the live windows stay (their rounds remain valid observations)."""
        self._engines.clear()
        self.counts.dropped += len(self._queue)
        self._queue.clear()

    def tick(self) -> None:
        """Score what is queued and close the rounds that are due (the publisher's timer)."""
        self.score_queued()
        for window in self.windows.values():
            window.close_due()

    def snapshot(self) -> dict[str, tuple[list[ClosedRound], tuple[str, ...], dict[str, Any]]]:
        """Per scenario: the window's rounds, its shadows and its counts (immutable parts only:
        safe to turn into standings off the event loop)."""
        return {scenario: (window.rounds(), window.labels, {**vars(window.counts), "pending": window.pending})
                for scenario, window in self.windows.items()}

    def versions(self) -> dict[str, str]:
        """Each shadow's policy version (its hyperparameter hash)."""
        return {spec.name: shadow_policy(self.config, spec).version for spec in self.config.shadows}

    def _failure(self, what: str, name: str, error: Exception) -> None:
        self.counts.failed += 1
        if (what, f"{name}:{type(error).__name__}") not in self._failed:
            self._failed.add((what, f"{name}:{type(error).__name__}"))
            log.exception("shadow %s failed for %s (counted; logged once per error type)", what, name)


def build_standings(snapshot: dict[str, tuple[list[ClosedRound], tuple[str, ...], dict[str, Any]]],
                    versions: dict[str, str], n_bootstrap: int, seed: int = 0,
                    rule: ReliabilityRule | None = None, min_difference: float = MIN_DIFFERENCE) -> dict[str, Any]:
    """{scenario: standings record} of a `WorkerShadows.snapshot` (pure; the costly part: one
    bootstrap per estimate and shadow); rule, min_difference: `standings`'."""
    out: dict[str, Any] = {}
    for scenario, (rounds, labels, counts) in snapshot.items():
        board = standings(rounds, labels, versions, n_bootstrap=n_bootstrap, seed=seed, rule=rule,
                          min_difference=min_difference)
        out[scenario] = {**board.to_dict(), "counts": counts}
    return out
