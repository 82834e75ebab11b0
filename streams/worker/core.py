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
from typing import Any

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
from online.wire import FeedbackEvent, WireClick, decode_feedback_fast
from streams.control import decode_control
from streams.dead_letter import DeadLetter
from streams.worker.catalog_codec import catalog_value, parse_catalog_value
from streams.worker.collector import paused as collector_paused
from streams.worker.partition_state import PartitionTables
from streams.worker.recent_ids import RECENT_EVENTS, RECENT_REQUESTS, RecentIds, id_key
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
from streams.worker.table_store import FEEDBACK_TOPICS, TOPIC_INDEX, AppliedOffsets, TableStore

log = logging.getLogger(__name__)
Embed = Callable[[Sequence[Item]], npt.NDArray[np.float32]]
_KIND = operator.attrgetter("kind")
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
        dead: list[DeadLetter] = []
        decoded: list[tuple[Record, FeedbackEvent]] = []
        store = self.store(records[0].partition)
        self.counts.received += len(records)
        events: list[FeedbackEvent] = []
        for record in records:
            try:
                event = decode_feedback_fast(record.value, "impression" if record.kind == "impressions" else "click")
                if event is None:  # not vouched for by the fast path: pydantic decides, or says why not
                    event = self._decode(record, Impression if record.kind == "impressions" else Click)
                check_key(record, event.user_id, "user_id")
                if event.type == "click" and not self._known_request(record.partition, event):
                    raise UnknownRequestError(f"click for unknown or expired request {event.request_id!r}")
            except Exception as error:  # any failure to parse or validate it: dead-lettered with its reason
                dead.append(self._dead(record, error))
                continue
            decoded.append((record, event))
            events.append(event)
        groups, routed = self._route(self.router(records[0].partition), decoded, set(map(_SCENARIO, events)), dead)
        duplicates: set[int] = set()
        for engine, group in groups:
            dead.extend(self._learn_engine(store, engine, group, duplicates))
        if self.shadows is not None:
            self.shadows.learn(records[0].partition, store, routed, duplicates)
        return dead

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
        Per record only dictionary lookups: each user's key, applied offsets and recent event
        ids are looked up once per batch (`_user_offsets`, `RecentIds.of`).

        Every state's offsets move as the list is read (a user's in `user_done`, the
        population's in `global_mark`), so a record delivered twice in one list (Faust's seek
        back to the committed offsets after a recovery fetches again what a lane already holds)
        is a replay at its second copy, for the population as for its user."""
        partition = decoded[0][0].partition  # the records of one partition
        global_done = store.offsets_of(engine.global_key)
        global_mark = dict(global_done)  # the population's offsets as of the record in hand
        user_events: list[FeedbackEvent] = []
        global_events: list[FeedbackEvent] = []
        replayed: set[str] = set()
        skipped = duplicates = 0
        seen: dict[str, tuple[dict[int, float], dict[int, float]]] = {}  # per user: (this batch's ids, recent ids)
        user_done: dict[str, tuple[str, AppliedOffsets]] = {}  # per user id: (its key, offsets as of this batch)
        for record, event in decoded:
            topic, offset, user_id = TOPIC_INDEX[record.kind], record.offset, event.user_id
            slot = user_done.get(user_id)
            if slot is None:
                slot = user_done[user_id] = self._user_offsets(store, engine.user_key(user_id), global_done)
            done = slot[1]
            user_new, global_new = offset > done.get(topic, -1), offset > global_mark.get(topic, -1)
            if user_new and global_new:
                ids = seen.get(user_id)
                if ids is None:
                    ids = seen[user_id] = ({}, self.events.of(partition, user_id))
                event_key = id_key(event.event_id)
                if event_key in ids[1] or event_key in ids[0]:  # a producer's duplicate
                    done[topic], global_mark[topic] = offset, offset  # passed, never learned
                    duplicates += 1
                    if duplicate_ids is not None:
                        duplicate_ids.add(id(event))
                    self.counts.tally(record.kind, "skipped")
                    continue
                ids[0][event_key] = event.time.timestamp()
            if user_new:
                user_events.append(event)
                done[topic] = offset
            if global_new:
                global_events.append(event)
                global_mark[topic] = offset
            if not (user_new or global_new):
                skipped += 1
                self.counts.tally(record.kind, "skipped")
            if not (user_new and global_new):
                replayed.update(engine.user_keys(user_id))  # the user's state and recent items
        for user_id, (ids, known) in seen.items():
            self.events.extend(partition, user_id, known, ids)
        for user_key, done in user_done.values():
            store.stage_offsets(user_key, done)
        if global_mark != global_done:
            store.stage_offsets(engine.global_key, global_mark)
        same = len(user_events) == len(global_events) and all(map(operator.is_, user_events, global_events))
        result = engine.observe(user_events, None if same else global_events)
        if replayed:  # resend what the local store may hold that the changelog lost in a crash
            for key in {*replayed, engine.global_key}:
                store.touch(key)
        dead = self._count_learned(decoded, user_events if same else [*user_events, *global_events], result,
                                   engine.policy.name, distinct=same)
        self.counts.skipped_duplicates += skipped + duplicates
        self.counts.learned += len(decoded) - len(result.rejected) - skipped - duplicates
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
        (scenario, policy) in `live`, summed per scenario over the batch first."""
        exposures: dict[str, float] = {}
        clicks: dict[str, float] = {}
        n_clicks = 0
        for event in events:
            if event.type == "impression":
                exposures[event.scenario] = exposures.get(event.scenario, 0.0) + len(event.shown)
            else:
                clicks[event.scenario] = clicks.get(event.scenario, 0.0) + event.reward
                n_clicks += 1
        for scenario in exposures.keys() | clicks.keys():
            before_exposures, before_clicks = self.live.get((scenario, policy), (0.0, 0.0))
            self.live[scenario, policy] = (before_exposures + exposures.get(scenario, 0.0),
                                           before_clicks + clicks.get(scenario, 0.0))
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

