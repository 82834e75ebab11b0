"""What the Faust agents call: decode, validate, dedupe and hand records to the engine.

No Faust here, so it is unit-testable with a dict as the table. Records arrive grouped by
partition; each partition has its own Engine (its own population state, key
"<policy>/global/<partition>") over the shared catalog. Every bad record becomes a
DeadLetter with its reason; nothing stops the worker. `counts` proves in = out.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable, Sequence
from itertools import repeat
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt

from online.catalog import Catalog
from online.config import DEFAULT_SCENARIO, SlatestreamConfig
from online.engine import Engine, ObserveResult, RankError
from online.events import (
    Click,
    EventDecodeError,
    Impression,
    Item,
    RankRequest,
    Slate,
    SlateError,
    decode_event,
    unexpected_error,
)
from online.features import FeatureMap
from online.request_text import TextEmbed
from online.retrieval import Retriever
from online.scenarios import ScenarioRouter
from online.wire import FeedbackEvent, WireClick, decode_feedback_many
from streams.control import decode_control
from streams.dead_letter import DeadLetter
from streams.worker.catalog_codec import catalog_value, parse_catalog_value
from streams.worker.collector import paused as collector_paused
from streams.worker.feedback_fold import fold_in_order, live_totals
from streams.worker.partition_state import PartitionTables
from streams.worker.recent_ids import RECENT_EVENTS, RECENT_REQUESTS, RecentIds
from streams.worker.records import (
    Counts,
    KeyMismatchError,
    Record,
    UnknownItemError,
    UnknownRequestError,
    UnknownScenarioError,
    check_key,
)
from streams.worker.shadows import WorkerShadows
from streams.worker.table_store import FEEDBACK_TOPICS, AppliedOffsets, TableStore

log = logging.getLogger(__name__)
Embed = Callable[[Sequence[Item]], npt.NDArray[np.float32]]
_KIND = operator.attrgetter("kind")
_VALUE = operator.attrgetter("value")
_USER_ID = operator.attrgetter("user_id")
_EVENT = operator.itemgetter(1)
_EXPECTED: dict[str, str] = {"impressions": "impression"}
"""The event a feedback record's topic role holds (any other role is read as clicks)."""
_SCENARIO = operator.attrgetter("scenario")


class WorkerCore:
    """Per-process state: catalog, and per partition its engines over its state table."""

    def __init__(
        self,
        config: SlatestreamConfig,
        tables: PartitionTables,
        embed: Embed,
        dim: int,
        seed: int = 0,
        features: FeatureMap | None = None,
        request_ttl_s: float = 86_400.0,
        recent_requests: int = RECENT_REQUESTS,
        recent_events: int = RECENT_EVENTS,
        retriever_for: Callable[[Catalog], Retriever] | None = None,
        embedding_version: Callable[[], str] | None = None,
        embed_text: TextEmbed | None = None,
    ) -> None:
        self.config = config
        self.request_ttl_s = request_ttl_s
        self.tables = tables
        self._stores: dict[int, TableStore] = {}
        self.catalog = Catalog(dim=dim)
        self.retriever = None if retriever_for is None else retriever_for(self.catalog)
        self.embedding_version = embedding_version
        self.embed_text = embed_text
        self.embed = embed
        self.seed = seed
        self.features = features
        self.counts = Counts()
        self._routers: dict[int, ScenarioRouter] = {}
        self.requests = RecentIds(self.store, "requests", recent_requests)
        self.live: dict[tuple[str, str], tuple[float, float]] = {}  # (scenario, policy) -> (exposures, clicks)
        self.events = RecentIds(self.store, "events", recent_events)
        self.shadows = WorkerShadows(self, FEEDBACK_TOPICS) if config.shadows else None  # docs/worker.md

    def store(self, partition: int) -> TableStore:
        """The applied-offsets adapter over the partition's state table."""
        store = self._stores.get(partition)
        if store is None:
            store = self._stores[partition] = TableStore(self.tables.for_partition(partition))
        return store

    def router(self, partition: int) -> ScenarioRouter:
        """The partition's engines (one per configured policy), created on first use."""
        router = self._routers.get(partition)
        if router is None:
            rng = np.random.default_rng([self.seed, partition])
            router = ScenarioRouter(self.config, self.store(partition), self.catalog, rng, features=self.features,
                                    retriever=self.retriever, shard=str(partition),
                                    embedding_version=self.embedding_version, embed_text=self.embed_text)
            self._routers[partition] = router
            for name, engine in router.engines.items():  # the caller has synced the catalog
                restored = engine.restore_soft_state()
                if restored is not None:
                    log.info("partition %d, policy %s: exposure windows: %s", partition, name, restored)
        return router

    def engine(self, partition: int, scenario: str = DEFAULT_SCENARIO) -> Engine:
        """The Engine serving `scenario` in `partition` (KeyError if it is not configured)."""
        engine = self.router(partition).engine_for(scenario)
        if engine is None:
            raise KeyError(f"scenario {scenario!r} is not configured")
        return engine

    def snapshot_windows(self) -> None:
        """Snapshot every partition's exposure windows that moved since its last snapshot
        (before the partitions move: the next owner loads them; flush the tables after)."""
        for router in self._routers.values():
            for engine in router.engines.values():
                engine.snapshot_soft_state()

    def partitions_changed(self) -> None:
        """Forget cached per-partition state: another worker may have written it."""
        self._routers.clear()
        self._stores.clear()
        if self.shadows is not None:
            self.shadows.partitions_changed()
        self.requests.clear()
        self.events.clear()

    def _dead(self, record: Record, error: Exception) -> DeadLetter:
        self.counts.dead_lettered += 1
        self.counts.tally(record.kind, "dead_lettered")
        name = type(error).__name__
        self.counts.by_reason[name] = self.counts.by_reason.get(name, 0) + 1
        return DeadLetter.from_error(
            record.value, topic=record.topic, partition=record.partition, offset=record.offset,
            key=record.key, error=error,
        )

    def _decode(self, record: Record, expected: type) -> Any:
        """The record's event if it is an `expected`, else EventDecodeError (whatever parsing or
        validating raised: the record is dead-lettered with that class and message)."""
        try:
            event = decode_event(record.value)
        except EventDecodeError:
            raise
        except Exception as error:  # one record's bytes never stop the worker
            raise unexpected_error("<event>", error) from error
        if not isinstance(event, expected):
            raise EventDecodeError("type", f"a {event.type} event on the {record.kind} topic")
        return event

    def rank(self, records: Sequence[Record]) -> tuple[list[Slate | SlateError], list[DeadLetter]]:
        """The answers to request records of one partition (a Slate, or a SlateError saying why a
        request that decoded cannot be served), and the dead letters (every request not served)."""
        slates: list[Slate | SlateError] = []
        dead: list[DeadLetter] = []
        for record in records:
            self.counts.received += 1
            try:
                request: RankRequest = self._decode(record, RankRequest)
            except EventDecodeError as error:
                dead.append(self._dead(record, error))
                continue
            try:
                check_key(record, request.user_id, "user_id")
                slate = self.router(record.partition).rank(request)
            except (KeyMismatchError, RankError) as error:
                dead.append(self._dead(record, error))
                slates.append(SlateError(request_id=request.request_id, user_id=request.user_id,
                                         scenario=request.scenario, error_type=type(error).__name__,
                                         reason=str(error)[:4096] or type(error).__name__))
                continue
            self._remember_request(record.partition, request)
            if self.shadows is not None:  # scored later, never changing what is served
                self.shadows.on_slate(record.partition, request, slate)
            self.counts.ranked += 1
            self.counts.tally("requests", "ranked")
            slates.append(slate)
        return slates, dead

    def _remember_request(self, partition: int, request: RankRequest) -> None:
        """Add a ranked request to its user's recent requests (what clicks are checked against):
        the last `recent_requests` per user, so the worker's state grows with users, not with
        requests. Event times are kept for the TTL check."""
        self.requests.add(partition, request.user_id, [(request.request_id, request.time.timestamp())])

    def _known_request(self, partition: int, click: Click | WireClick) -> bool:
        """Whether the click's request is among its user's recent requests and the click
        came at most `request_ttl_s` after it (event times)."""
        sent = self.requests.time_of(partition, click.user_id, click.request_id)
        return sent is not None and sent >= click.time.timestamp() - self.request_ttl_s

    def learn(self, records: Sequence[Record]) -> list[DeadLetter]:
        """Fold impression, click and control records of one partition into state, in order.

        Control records (kind "control", see streams.control) split the batch: what came
        before one is learned first, then it is applied, then the rest. The cyclic collector
        is off for the call (`streams.worker.collector.paused`).
        """
        with collector_paused():
            return self._learn_in_order(records)

    def _learn_in_order(self, records: Sequence[Record]) -> list[DeadLetter]:
        """`learn` with the collector as the caller left it."""
        if "control" not in map(_KIND, records):  # the usual list: no split, no loop here
            return self._learn_feedback(records) if records else []
        dead: list[DeadLetter] = []
        segment: list[Record] = []
        for record in records:
            if record.kind != "control":
                segment.append(record)
                continue
            if segment:
                dead.extend(self._learn_feedback(segment))
                segment = []
            dead.extend(self.control(record))
        if segment:
            dead.extend(self._learn_feedback(segment))
        return dead

    def control(self, record: Record) -> list[DeadLetter]:
        """Apply one control record (a ForgetUser): delete the user's state in its partition (not
        its recent requests: clicks in flight still need them, see docs/worker.md)."""
        self.counts.received += 1
        try:
            command = decode_control(record.value)
            check_key(record, command.user_id, "user_id")
        except Exception as error:  # any failure to parse or validate it: dead-lettered with its reason
            return [self._dead(record, error)]
        router = self.router(record.partition)
        router.forget(command.user_id)
        if self.shadows is not None:
            self.shadows.forget(record.partition, command.user_id)
        store = self.store(record.partition)
        for engine in router.engines.values():  # the acknowledgement, also for a user with no state
            store.tombstone(engine.user_key(command.user_id))
        self.counts.controls += 1
        self.counts.tally("control", "applied")
        self.counts.forgotten += 1
        return []

    def _learn_feedback(self, records: Sequence[Record]) -> list[DeadLetter]:
        store = self.store(records[0].partition)
        self.counts.received += len(records)
        decoded, dead = self._vetted(records)
        events = list(map(_EVENT, decoded))
        groups, routed = self._route(self.router(records[0].partition), decoded, set(map(_SCENARIO, events)), dead)
        duplicates: set[int] = set()
        for engine, group in groups:
            dead.extend(self._learn_engine(store, engine, group, duplicates))
        if self.shadows is not None:
            self.shadows.learn(records[0].partition, store, routed, duplicates)
        return dead

    def _vetted(self, records: Sequence[Record]) -> tuple[list[tuple[Record, FeedbackEvent]], list[DeadLetter]]:
        """(record, event) of each record that decodes, is keyed by its user id and, a click,
        answers a recent request, in order; and a dead letter for each other record. A record
        the fast decoder leaves is decoded by pydantic, which accepts it or says why not."""
        decoded: list[tuple[Record, FeedbackEvent]] = []
        dead: list[DeadLetter] = []
        for record, event in zip(records, self._decode_fast(records), strict=True):
            try:
                if event is None:
                    event = self._decode(record, Impression if record.kind == "impressions" else Click)
                if record.key != event.user_id.encode():  # (the call only when it raises)
                    check_key(record, event.user_id, "user_id")
            except Exception as error:  # any failure to parse or validate it: dead-lettered with its reason
                dead.append(self._dead(record, error))
                continue
            refusal = self._unanswered(record, event) if event.type == "click" else None
            if refusal is None:
                decoded.append((record, event))
            else:
                dead.append(self._dead(record, refusal))
        return decoded, dead

    def _unanswered(self, record: Record, click: FeedbackEvent) -> Exception | None:
        """Why a click cannot be learned (its request is not among its user's recent ones, or
        reading them failed), or None."""
        try:
            if not self._known_request(record.partition, cast(Click | WireClick, click)):
                return UnknownRequestError(f"click for unknown or expired request {click.request_id!r}")
        except Exception as error:  # a stored list that cannot be read: this click is dead-lettered with it
            return error
        return None

    @staticmethod
    def _decode_fast(records: Sequence[Record]) -> Sequence[FeedbackEvent | None]:
        """`decode_feedback_many` of the records' values (impressions as impressions, any other
        kind as clicks); all None, for pydantic to decide each, should it ever raise."""
        try:
            kinds = cast(list[Literal["impression", "click"]], list(map(_EXPECTED.get, map(_KIND, records),
                                                                             repeat("click"))))
            return decode_feedback_many(list(map(_VALUE, records)), kinds)
        except Exception:  # it never should: then every record takes the slower path, none is lost
            return [None] * len(records)

    def _route(self, router: ScenarioRouter, decoded: list[tuple[Record, FeedbackEvent]], scenarios: set[str],
               dead: list[DeadLetter],
               ) -> tuple[list[tuple[Engine, list[tuple[Record, FeedbackEvent]]]], list[tuple[Record, FeedbackEvent]]]:
        """(each engine with its events in log order, every routed event in log order); events
        of a scenario not configured are dead-lettered into `dead`. `scenarios`: the events'
        scenarios. A list of one scenario (the usual case) is routed whole, without a per-event
        loop."""
        if len(scenarios) == 1:
            engine = router.engine_for(next(iter(scenarios)))
            if engine is not None:
                return [(engine, decoded)], decoded
        by_engine: dict[int, tuple[Engine, list[tuple[Record, FeedbackEvent]]]] = {}
        routed: list[tuple[Record, FeedbackEvent]] = []
        engines: dict[str, Engine | None] = {}  # per scenario, looked up once per batch
        for record, event in decoded:
            scenario = event.scenario
            engine = engines[scenario] if scenario in engines else engines.setdefault(scenario,
                                                                                     router.engine_for(scenario))
            if engine is None:
                dead.append(self._dead(record, UnknownScenarioError(f"scenario {event.scenario!r} is not configured")))
            else:
                by_engine.setdefault(id(engine), (engine, []))[1].append((record, event))
                routed.append((record, event))
        return list(by_engine.values()), routed

    def _learn_engine(self, store: TableStore, engine: Engine, decoded: Sequence[tuple[Record, FeedbackEvent]],
                      duplicate_ids: set[int] | None = None) -> list[DeadLetter]:
        """Fold one engine's feedback into its states, skipping what each state already holds;
        the ids of events skipped as a producer's duplicates are added to `duplicate_ids`.
        Each user's key, applied offsets and recent event ids are looked up once per batch
        (`_user_offsets`, `RecentIds.of`); `fold_in_order` decides which state learns which event."""
        global_done = store.offsets_of(engine.global_key)
        user_done = {user_id: self._user_offsets(store, engine.user_key(user_id), global_done)
                     for user_id in dict.fromkeys(map(_USER_ID, map(_EVENT, decoded)))}
        fold_result = fold_in_order(self.events, self.counts, engine, decoded, global_done, user_done,
                                    duplicate_ids)
        for user_key, done in user_done.values():
            store.stage_offsets(user_key, done)
        if fold_result.global_mark != global_done:
            store.stage_offsets(engine.global_key, fold_result.global_mark)
        user_events, global_events = fold_result.user_events, fold_result.global_events
        same = len(user_events) == len(global_events) and all(map(operator.is_, user_events, global_events))
        result = engine.observe(user_events, None if same else global_events)
        if fold_result.replayed:  # resend what the local store may hold that the changelog lost in a crash
            for key in {*fold_result.replayed, engine.global_key}:
                store.touch(key)
        dead = self._count_learned(decoded, user_events if same else [*user_events, *global_events], result,
                                   engine.policy.name, distinct=same)
        passed = fold_result.skipped + fold_result.duplicates
        self.counts.skipped_duplicates += passed
        self.counts.learned += len(decoded) - len(result.rejected) - passed
        return dead

    @staticmethod
    def _user_offsets(store: TableStore, user_key: str, global_done: AppliedOffsets) -> tuple[str, AppliedOffsets]:
        """(user_key, a copy of the offsets its value holds). A user with no value starts at the
        partition's watermark (staged now): an event the population already holds was learned
        before the user's state was deleted."""
        stored = store.applied_offsets(user_key)
        if stored is None:
            store.stage_offsets(user_key, global_done)
        return user_key, dict(global_done if stored is None else stored)

    def _count_learned(self, decoded: Sequence[tuple[Record, FeedbackEvent]], learned: Sequence[FeedbackEvent],
                       result: ObserveResult, policy: str, distinct: bool) -> list[DeadLetter]:
        """Tally the events an observe learned (`learned`: each event once when `distinct`, else
        some twice, in both the user and the population lists: counted once) and dead-letter
        those it rejected."""
        dead: list[DeadLetter] = []
        rejected: set[int] = set()
        if result.rejected:
            record_of = {id(event): record for record, event in decoded}
            rejected = {id(event) for event, _ in result.rejected}
            for event, reason in result.rejected:
                dead.append(self._dead(record_of[id(event)], UnknownItemError(reason)))
        if rejected or not distinct:
            learned = list({id(event): event for event in learned if id(event) not in rejected}.values())
        self._live(learned, policy)
        return dead

    def _live(self, events: Sequence[FeedbackEvent], policy: str) -> None:
        """Count learned events (each once): per topic in `counts`, and (exposures, clicks) per
        (scenario, policy) in `live` (`live_totals`)."""
        by_scenario, n_clicks = live_totals(events)
        for scenario, (exposures, rewards) in by_scenario.items():
            before_exposures, before_clicks = self.live.get((scenario, policy), (0.0, 0.0))
            self.live[scenario, policy] = (before_exposures + exposures, before_clicks + rewards)
        self.counts.tally("impressions", "learned", len(events) - n_clicks)
        self.counts.tally("clicks", "learned", n_clicks)

    def add_items(self, records: Sequence[Record]) -> tuple[list[tuple[Item, bytes]], list[DeadLetter]]:
        """Embed item records into the catalog; returns (item, catalog table value) pairs."""
        dead: list[DeadLetter] = []
        items: list[Item] = []
        for record in records:
            self.counts.received += 1
            try:
                item = self._decode(record, Item)
                check_key(record, item.item_id, "item_id")
                items.append(item)
            except Exception as error:  # any failure to parse or validate it: dead-lettered with its reason
                dead.append(self._dead(record, error))
        if not items:
            return [], dead
        vectors = self.embed(items)
        self.catalog.upsert(items, vectors)
        self.counts.items += len(items)
        self.counts.tally("items", "added", len(items))
        return [(item, catalog_value(item, vector)) for item, vector in zip(items, vectors, strict=True)], dead

    def load_catalog_value(self, value: bytes) -> None:
        """Add one catalog table value (written by any worker) to the in-memory catalog."""
        item, vector = parse_catalog_value(value, self.catalog.dim)
        self.catalog.upsert([item], vector[None, :])
