"""The worker's topology: what it reads, what it runs on each record, what it writes.

    requests    -> RequestPath  -> WorkerCore.rank  -> slates topic (keyed by user id)
    impressions -> FeedbackPath -> WorkerCore.learn -> state table (RocksDB, changelogged)
    clicks      ┤  (requests and feedback reach them through batch lanes: streams.worker.lanes)
    control     ┘  (ForgetUser: delete a user's state, see streams.control)
    items       -> WorkerCore.add_items -> catalog topic -> CatalogFollower (every worker)
    bad records -> dead-letter topic, with the original bytes and the reason

`WorkerTopology.build(app, ...)` declares it on a Faust app: topics, the state table, the lanes
and their tasks, the items agent, the catalog follower, timers and rebalance handlers. Its parts
(`RequestPath`, `FeedbackPath`, `Rebalancer`, `LaneStats`, `streams.worker.catalog.CatalogFollower`)
take plain callables and are built and tested without a broker (tests/streams/worker/).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import faust

from online.events import Slate, SlateError, encode_event, encode_slate_error
from streams.control import control_topic
from streams.dead_letter import DeadLetter, DeadLetterSendStats, send_dead_letters
from streams.settings import StreamSettings
from streams.topics import TopicNames
from streams.worker.catalog import CatalogFollower
from streams.worker.collector import YOUNG_THRESHOLD, CollectorClock
from streams.worker.collector import settle as settle_collector
from streams.worker.config import WorkerConfig
from streams.worker.core import Record, WorkerCore
from streams.worker.faust_private import SlatestreamApp
from streams.worker.lanes import BatchLane, Chunk, GroupCommit, records
from streams.worker.partition_state import StateTables, faust_send_many

log = logging.getLogger("slatestream.worker")

STATE_TABLE = "state"
"""The worker's Faust table (changelog topic "<app id>-state-changelog")."""
DEAD_LETTER_SEND_TIMEOUT_S = 5.0
"""How long one dead letter may wait for the broker's acknowledgement before it is retried."""
SendDead = Callable[[Sequence[DeadLetter]], Awaitable[None]]
SendSlate = Callable[[Slate | SlateError], Awaitable[None]]
Flush = Callable[..., Awaitable[Any]]


def by_partition(messages: Iterable[Any]) -> dict[int, list[Any]]:
    """Records (anything with a `partition`) grouped by partition, in order."""
    groups: dict[int, list[Any]] = {}
    for message in messages:
        groups.setdefault(message.partition, []).append(message)
    return groups


def to_record(kind: str, message: Any) -> Record:
    """A consumed record (aiokafka's or Faust's) as the core's `Record` of topic role `kind`."""
    return Record(kind, message.topic, message.partition, message.offset, message.key, bytes(message.value or b""))


@dataclass
class BatchStats:
    """A path's batches since start: how many, records in them, seconds spent processing, and
    their groups, named by `group_name`: the request path's groups answered after one
    acknowledged flush each, the feedback path's partition groups (one `WorkerCore.learn` each,
    timed by `add_group`: `group_s` wall seconds in those calls, `group_cpu_s` of them on the
    CPU, the event loop thread's CPU time; the rest of the wall time the thread waited for a core)."""

    batches: int = 0
    records: int = 0
    busy_s: float = 0.0
    groups: int = 0
    group_name: str = "answered groups"
    group_s: float = 0.0
    group_cpu_s: float = 0.0

    def add(self, records: int, seconds: float) -> None:
        self.batches += 1
        self.records += records
        self.busy_s += seconds

    def add_group(self, seconds: float, cpu_seconds: float) -> None:
        """One timed group: `seconds` of wall time, `cpu_seconds` of this thread's CPU time."""
        self.groups += 1
        self.group_s += seconds
        self.group_cpu_s += cpu_seconds

    def __str__(self) -> str:
        mean = self.records / self.batches if self.batches else 0.0
        groups = f", {self.groups} {self.group_name}" if self.groups else ""
        if self.group_s:
            groups += f" in {self.group_s:.2f} s ({self.group_cpu_s:.2f} s on the CPU)"
        return f"{self.batches} batches, {mean:.1f} records/batch, {self.busy_s:.1f} s busy{groups}"


@dataclass
class LaneStats:
    """What the worker logs every few seconds: counts, batches per path, changelog flushes."""

    requests: BatchStats = field(default_factory=BatchStats)
    feedback: BatchStats = field(default_factory=lambda: BatchStats(group_name="partition groups learned"))
    dead_letters: DeadLetterSendStats = field(default_factory=DeadLetterSendStats)
    collector: CollectorClock = field(default_factory=CollectorClock)  # started by the running worker

    def lines(self, core: WorkerCore, tables: Any, lane: BatchLane, commit: GroupCommit) -> list[str]:
        """The report's lines (the feedback lane's window, once it committed, for benchmarks)."""
        letters = self.dead_letters
        out = [f"counts {core.counts}", f"batches requests: {self.requests}; feedback: {self.feedback}",
               f"dead letters {letters.sent} sent, {letters.retries} retries, {letters.lost} lost",
               f"changelog {tables.records_sent} state records sent in {tables.flushes} flushes, "
               f"{tables.flush_s:.2f} s", f"{self.collector} since start"]
        if lane.first_taken_at is not None and commit.last_commit_at is not None:
            out.append(f"feedback lane: {lane.taken} records taken from {lane.first_taken_at:.3f}, "
                       f"{commit.committed} committed, the last commit at {commit.last_commit_at:.3f} (unix s)")
        return out


async def wait_until_caught_up(catalog: CatalogFollower, log_every_s: float = 10.0) -> None:
    """Until the catalog follower has read the catalog topic to its end: feedback learned before
    would name items the catalog does not hold yet (and be dead-lettered for it)."""
    waited = 0.0
    while not catalog.caught_up:
        await asyncio.sleep(0.05)
        waited += 0.05
        if waited >= log_every_s:
            log.warning("feedback waits for the catalog to load (%.0f s so far)", waited)
            log_every_s += 10.0


class RequestPath:
    """Rank request records one by one and answer them in groups, each answer only once its
    request is durable: the changelog records of the users' recent requests acknowledged by
    Kafka (a click answers a slate, so a worker that takes the partition over knows the click's
    request, docs/worker.md). A group is the requests of a lane's list ranked within `group_s`
    of the first: one acknowledged flush makes them all durable, then their slates go out in
    order. A lone request waits one broker round trip, as before; under a backlog n requests
    wait one round trip instead of n (each waited its own: ~1,000 requests/s at most)."""

    def __init__(self, core: WorkerCore, catalog: CatalogFollower, send_slate: SendSlate, send_dead: SendDead,
                 flush: Flush, stats: BatchStats, empty_catalog_wait_s: float,
                 observe: Callable[[Slate, float], None] | None = None,
                 group_s: float = WorkerConfig.request_group_s) -> None:
        self.core, self.catalog, self.stats = core, catalog, stats
        self.send_slate, self.send_dead, self.flush = send_slate, send_dead, flush
        self.empty_catalog_wait_s = empty_catalog_wait_s
        self.observe = observe or (lambda slate, seconds: None)
        self.group_s = group_s

    async def wait_for_catalog(self) -> None:
        """At start-up, let the catalog follower load the catalog before the first request is ranked."""
        waited = 0.0
        while (not self.catalog.caught_up or len(self.core.catalog) == 0) and waited < self.empty_catalog_wait_s:
            await asyncio.sleep(0.05)
            waited += 0.05

    async def handle(self, messages: Sequence[Any]) -> None:
        started = time.perf_counter()
        await self.wait_for_catalog()
        slates: list[Slate | SlateError] = []
        dead: list[DeadLetter] = []
        group_started = time.perf_counter()
        for message in messages:
            ranking = time.perf_counter()
            ranked, refused = self.core.rank([to_record("requests", message)])
            for slate in ranked:
                if isinstance(slate, Slate):
                    self.observe(slate, time.perf_counter() - ranking)
            slates.extend(ranked)
            dead.extend(refused)
            if time.perf_counter() - group_started >= self.group_s:
                await self._answer(slates, dead)
                slates, dead, group_started = [], [], time.perf_counter()
        if slates or dead:
            await self._answer(slates, dead)
        self.stats.add(len(messages), time.perf_counter() - started)

    async def _answer(self, slates: Sequence[Slate | SlateError], dead: Sequence[DeadLetter]) -> None:
        """Make a group's requests durable (one acknowledged flush), then send its answers in order."""
        await self.flush(acknowledged=any(isinstance(slate, Slate) for slate in slates))
        for slate in slates:
            await self.send_slate(slate)
        await self.send_dead(dead)
        self.stats.groups += 1


class FeedbackPath:
    """Learn impression, click and control records, one partition's share at a time."""

    def __init__(self, core: WorkerCore, catalog: CatalogFollower, kinds: Mapping[str, str], send_dead: SendDead,
                 flush: Flush, stats: BatchStats, observe: Callable[[float], None] | None = None) -> None:
        self.core, self.catalog, self.kinds, self.stats = core, catalog, kinds, stats
        self.send_dead, self.flush = send_dead, flush
        self.observe = observe or (lambda seconds: None)

    async def handle(self, messages: Sequence[Any], flush: bool = True) -> None:
        """Learn a list of records; with `flush`, hand their state writes to the producer
        before returning (they are acked next)."""
        started = time.perf_counter()
        await wait_until_caught_up(self.catalog)
        for group in by_partition(messages).values():
            records = [to_record(self.kinds[m.topic], m) for m in group]
            learning, learning_cpu = time.perf_counter(), time.thread_time()
            dead = self.core.learn(records)
            seconds = time.perf_counter() - learning
            self.observe(seconds)
            self.stats.add_group(seconds, time.thread_time() - learning_cpu)
            await self.send_dead(dead)
            await asyncio.sleep(0)  # let requests in between partitions
        if flush:
            await self.flush()
        self.stats.add(len(messages), time.perf_counter() - started)


class Rebalancer:
    """Partitions move: with the lanes held, commit what was processed, then swap the state.

    Args:
        lanes: the batch lanes (held: no list in hand, none taken meanwhile).
        commit: the feedback lane's group commit (flushes state, acks records).
        core, tables: the per-partition caches to drop.
        flush_producer: delivers everything sent so far (the changelog before the partitions move).
        young_threshold: the collector's young-generation threshold, set at each assignment
            (streams.worker.collector).
    """

    def __init__(self, lanes: Sequence[BatchLane], commit: GroupCommit, core: WorkerCore, tables: Any,
                 flush_producer: Flush, young_threshold: int = YOUNG_THRESHOLD) -> None:
        self.lanes, self.commit, self.core, self.tables = lanes, commit, core, tables
        self.flush_producer = flush_producer
        self.young_threshold = young_threshold
        self.assigned: set[int] = set()  # the feedback partitions this worker owns (empty while revoked)

    async def swap(self, drop_waiting: bool) -> list[int]:
        """Snapshot soft state, flush and ack, deliver the changelog, forget the partitions'
        caches; returns how many waiting records each lane dropped (delivered again)."""
        async with _held(self.lanes, drop_waiting) as dropped:
            self.core.snapshot_windows()  # written into the tables, flushed by the commit
            await self.commit.commit()
            await self.flush_producer()
            self.core.partitions_changed()
            self.tables.partitions_changed()
        if any(dropped):
            log.info("rebalance: dropped %s waiting records (delivered again)", dropped)
        return dropped

    async def on_revoked(self, *_: Any, **__: Any) -> None:
        self.assigned = set()
        await self.swap(drop_waiting=True)

    async def on_assigned(self, _sender: Any, assigned: Any = (), *_: Any, **__: Any) -> None:
        await self.swap(drop_waiting=False)
        topics = self.lanes[-1].topics
        self.assigned = {tp.partition for tp in assigned if tp.topic in topics}
        log.info("assigned partitions %s", sorted(self.assigned))
        # What exists now (Faust, modules, the catalog so far) lives as long as the process: keep
        # it out of the cyclic collector's passes, and make the young ones rarer (collector.py).
        settle_collector(self.young_threshold)


class _held:
    """Hold several lanes at once (`BatchLane.held`), yielding what each dropped. A lane entered
    is always left again, even when entering a later one fails or is cancelled (a lane left held
    would take no list for good)."""

    def __init__(self, lanes: Sequence[BatchLane], drop: bool) -> None:
        self.lanes, self.drop = lanes, drop
        self.stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> list[int]:
        async with contextlib.AsyncExitStack() as entering:
            dropped = [await entering.enter_async_context(lane.held(self.drop)) for lane in self.lanes]
            self.stack = entering.pop_all()
        return dropped

    async def __aexit__(self, *exc: Any) -> None:
        await self.stack.aclose()


async def drive(app: faust.App, lane: BatchLane, handle: Callable[[list[Chunk]], Awaitable[None]]) -> None:
    """Process a lane's lists for good (`handle` acks them); an exception here is a bug (bad
    input is dead-lettered), so it stops the worker."""
    log.info("batch lanes on for %s", ", ".join(sorted(lane.topics)))
    try:
        async for batch in lane.batches():
            await handle(batch)
    except asyncio.CancelledError:  # not an Exception: without this line a lane would end unseen
        if not app.should_stop:
            log.error("batch lane of %s cancelled while the worker runs: it takes no more records",
                      sorted(lane.topics), exc_info=True)
        raise
    except Exception as error:
        log.exception("batch lane of %s failed", sorted(lane.topics))
        await app.crash(error)
        raise


@dataclass
class WorkerTopology:
    """The parts of a running worker, declared on its Faust app by `build`."""

    app: SlatestreamApp
    core: WorkerCore
    tables: StateTables
    catalog: CatalogFollower
    request_lane: BatchLane
    feedback_lane: BatchLane
    commit: GroupCommit
    requests: RequestPath
    feedback: FeedbackPath
    rebalancer: Rebalancer
    stats: LaneStats

    @classmethod
    def build(cls, app: SlatestreamApp, settings: StreamSettings, config: WorkerConfig,
              make_core: Callable[[StateTables], WorkerCore]) -> WorkerTopology:
        """Declare the worker on `app` (topics must exist: see streams.worker.run)."""
        names = TopicNames.from_settings(settings)

        def raw_topic(*topic_names: str) -> faust.TopicT:
            return app.topic(*topic_names, key_type=bytes, value_type=bytes, key_serializer="raw",
                             value_serializer="raw", partitions=settings.partitions)

        state = app.Table(STATE_TABLE, partitions=settings.partitions, key_type=bytes, value_type=bytes)
        tables = StateTables(state, faust_send_many(app))
        core = make_core(tables)
        catalog = CatalogFollower(core, names.catalog)
        slates_topic, dead_topic = raw_topic(names.slates), raw_topic(names.dead_letter)
        catalog_topic = raw_topic(names.catalog)

        async def send_slate(slate: Slate | SlateError) -> None:
            value = encode_event(slate) if isinstance(slate, Slate) else encode_slate_error(slate)
            await slates_topic.send(key=slate.user_id.encode(), value=value)

        async def send_dead_record(key: bytes | None, value: bytes) -> object:
            delivered = await dead_topic.send(key=key, value=value, force=True)  # now, not at the ack
            return await delivered  # the broker's acknowledgement: a failed send is retried

        async def send_dead(letters: Sequence[DeadLetter]) -> None:
            if letters:
                await send_dead_letters(send_dead_record, letters, timeout_s=DEAD_LETTER_SEND_TIMEOUT_S,
                                        stats=stats.dead_letters)

        stats = LaneStats()
        kinds = {names.impressions: "impressions", names.clicks: "clicks", control_topic(settings): "control"}
        request_lane = BatchLane([names.requests], max_batch=config.request_batch_size)
        feedback_lane = BatchLane(kinds, max_batch=config.batch_size)
        for lane in (request_lane, feedback_lane):
            app.add_batch_lane(lane)
            app.topics.add(raw_topic(*lane.topics))  # subscribed; the consumer hands their records to the lane
        commit = GroupCommit(feedback_lane, tables.flush, tables.pending_keys, config.flush_interval_s,
                             config.flush_max_keys)
        topology = cls(
            app, core, tables, catalog, request_lane, feedback_lane, commit,
            RequestPath(core, catalog, send_slate, send_dead, tables.flush, stats.requests,
                        config.empty_catalog_wait_s, group_s=config.request_group_s),
            FeedbackPath(core, catalog, kinds, send_dead, tables.flush, stats.feedback),
            Rebalancer([request_lane, feedback_lane], commit, core, tables, app.producer.flush,
                       config.gc_young_threshold), stats)
        topology._declare(raw_topic(names.items), catalog_topic, settings, config, send_dead)
        return topology

    async def rank_and_ack(self, batch: list[Chunk]) -> None:
        """The request lane's handler: rank, then ack."""
        await self.requests.handle(records(batch))
        self.request_lane.ack(batch)

    async def learn_and_commit(self, batch: list[Chunk]) -> None:
        """The feedback lane's handler: learn, then ack by group commit (see WorkerConfig)."""
        await self.feedback.handle(records(batch), flush=False)
        await self.commit.processed(batch)

    async def add_items(self, events: Sequence[Any], catalog_topic: faust.TopicT, send_dead: SendDead) -> None:
        """Embed a take of item events (Faust's) into the catalog and write their vectors to the
        catalog topic, which every worker follows."""
        added, dead = self.core.add_items([to_record("items", event.message) for event in events])
        for item, value in added:
            await catalog_topic.send(key=item.item_id.encode(), value=value, force=True)
        await send_dead(dead)

    def _declare(self, items_topic: faust.TopicT, catalog_topic: faust.TopicT, settings: StreamSettings,
                 config: WorkerConfig, send_dead: SendDead) -> None:
        app = self.app

        @app.agent(items_topic)
        async def items(stream: faust.StreamT) -> None:
            async for events in stream.take_events(config.item_batch_size, within=config.batch_wait_s):
                await self.add_items(events, catalog_topic, send_dead)

        @app.task
        async def follow_catalog() -> None:
            self.catalog.start(settings, asyncio.get_running_loop())

        @app.task
        async def time_the_collector() -> None:  # its passes and seconds, in the counts report
            self.stats.collector.start()

        @app.task
        async def requests_lane() -> None:
            await drive(app, self.request_lane, self.rank_and_ack)

        @app.task
        async def feedback_lane() -> None:
            await drive(app, self.feedback_lane, self.learn_and_commit)

        reported: list[tuple[int, ...]] = [()]

        @app.timer(interval=5.0)
        async def report_counts() -> None:  # quiet when idle: only when something moved
            counts = self.core.counts
            now = (counts.received, counts.dead_lettered, self.tables.records_sent, self.commit.committed)
            if now != reported[0]:
                reported[0] = now
                for line in self.stats.lines(self.core, self.tables, self.feedback_lane, self.commit):
                    log.info("%s", line)

        app.on_partitions_revoked.connect(self.rebalancer.on_revoked)
        app.on_partitions_assigned.connect(self.rebalancer.on_assigned)

        async def flush_to_disk(*_: Any, **__: Any) -> None:
            log.info("state: %d partitions flushed to disk before shutdown", self.tables.flush_to_disk())

        app.on_before_shutdown.connect(flush_to_disk)
