"""The worker's topology: what it reads, what it runs on each record, what it writes.

    requests    -> RequestPath  -> WorkerCore.rank  -> slates topic (keyed by user id)
    impressions -> FeedbackPath -> WorkerCore.learn -> state table (RocksDB, changelogged)
    clicks      ┤  (requests and feedback reach them through batch lanes: streams.worker.lanes;
                ┤   the requests fetched by their own consumer: streams.worker.request_fetcher)
    control     ┘  (ForgetUser: delete a user's state, see streams.control)
    items       -> WorkerCore.add_items -> catalog topic -> CatalogFollower (every worker)
    bad records -> dead-letter topic, with the original bytes and the reason

`WorkerTopology.build(app, ...)` declares it on a Faust app: topics, the state table, the lanes
and their tasks, the items agent, the catalog follower, timers and rebalance handlers. Its parts
(`streams.worker.paths`: `RequestPath`, `FeedbackPath`; here `Rebalancer`, `LaneStats`;
`streams.worker.catalog.CatalogFollower`) take plain callables and are built and tested without a
broker (tests/streams/worker/).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

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
from streams.worker.core import WorkerCore
from streams.worker.faust_private import BatchDrainConsumer, SlatestreamApp
from streams.worker.lanes import BatchLane, Chunk, GroupCommit, records
from streams.worker.partition_state import StateTables, faust_send_many
from streams.worker.paths import BatchStats, FeedbackPath, Flush, RequestPath, RequestsFirst, SendDead, to_record
from streams.worker.request_fetcher import RequestFetcher, request_consumer

log = logging.getLogger("slatestream.worker")

STATE_TABLE = "state"
"""The worker's Faust table (changelog topic "<app id>-state-changelog")."""
DEAD_LETTER_SEND_TIMEOUT_S = 5.0
"""How long one dead letter may wait for the broker's acknowledgement before it is retried."""

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


class Rebalancer:
    """Partitions move: with the lanes held, commit what was processed, then swap the state.

    Args:
        lanes: the batch lanes (held: no list in hand, none taken meanwhile).
        commit: the feedback lane's group commit (flushes state, acks records).
        core, tables: the per-partition caches to drop.
        flush_producer: delivers everything sent so far (the changelog before the partitions move).
        young_threshold: the collector's young-generation threshold, set at each assignment
            (streams.worker.collector).
        requests: the request fetcher (streams.worker.request_fetcher), told when partitions
            are revoked and assigned.
    """

    def __init__(self, lanes: Sequence[BatchLane], commit: GroupCommit, core: WorkerCore, tables: Any,
                 flush_producer: Flush, young_threshold: int = YOUNG_THRESHOLD,
                 requests: RequestFetcher | None = None) -> None:
        self.lanes, self.commit, self.core, self.tables = lanes, commit, core, tables
        self.flush_producer = flush_producer
        self.young_threshold = young_threshold
        self.requests = requests
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
        if self.requests is not None:
            self.requests.stop_fetching()  # nothing more arrives; the list in hand is still acked
        await self.swap(drop_waiting=True)
        if self.requests is not None:
            self.requests.release()

    async def on_assigned(self, _sender: Any, assigned: Any = (), /, *_: Any, **__: Any) -> None:
        await self.swap(drop_waiting=False)
        if self.requests is not None:
            self.requests.assign_from(assigned)
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
    request_fetcher: RequestFetcher
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
        feedback_lane = BatchLane(kinds, max_batch=config.batch_size, whole_shares=True)
        app.add_batch_lane(feedback_lane, record_kinds=kinds)
        app.topics.add(raw_topic(*feedback_lane.topics))  # subscribed; the consumer hands their records to the lane
        fetcher = RequestFetcher(
            names.requests, request_lane, lambda: cast(BatchDrainConsumer, app.consumer),
            lambda: request_consumer(settings.aiokafka_client_config(), app.conf.id, settings.consumer_max_fetch_bytes))
        app.fetch_apart(request_lane.topics, fetcher.faust_takes)
        app.topics.add(raw_topic(*request_lane.topics))  # subscribed: assigned and committed in the group
        commit = GroupCommit(feedback_lane, tables.flush, tables.pending_keys, config.flush_interval_s,
                             config.flush_max_keys)
        topology = cls(
            app, core, tables, catalog, request_lane, fetcher, feedback_lane, commit,
            RequestPath(core, catalog, send_slate, send_dead, tables.start_flush, stats.requests,
                        config.empty_catalog_wait_s, group_s=config.request_group_s),
            FeedbackPath(core, catalog, kinds, send_dead, tables.flush, stats.feedback,
                         requests_first=RequestsFirst(request_lane, config.serving_piece_records,
                                                      recent_s=config.serving_window_s,
                                                      max_wait_s=config.requests_first_wait_s)),
            Rebalancer([request_lane, feedback_lane], commit, core, tables, app.producer.flush,
                       config.gc_young_threshold, fetcher), stats)
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
        async def items(stream: faust.StreamT[Any]) -> None:
            # the app's Stream (faust.Stream: conf.Stream is left as is), whose take_events StreamT lacks
            taken = cast("faust.Stream[Any]", stream).take_events(config.item_batch_size, within=config.batch_wait_s)
            async for events in taken:
                await self.add_items(events, catalog_topic, send_dead)

        @app.task
        async def follow_catalog() -> None:
            self.catalog.start(settings, asyncio.get_running_loop())

        @app.task
        async def time_the_collector() -> None:  # its passes and seconds, in the counts report
            self.stats.collector.start()

        @app.task
        async def fetch_requests() -> None:
            try:
                await self.request_fetcher.run()
            except Exception as error:  # a bug (the fetcher retries what the broker refuses): stop the worker
                log.exception("the request fetcher failed")
                await app.crash(error)
                raise

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
