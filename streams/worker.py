"""The streaming worker: a faust-streaming app whose agents only translate.

    requests    -> WorkerCore.rank  -> slates topic (keyed by user id)
    impressions -> WorkerCore.learn -> state table (RocksDB via rocksdict, changelogged)
    clicks      ┤  (requests and feedback through batch lanes: streams.batch_lane)
    control     ┘  (ForgetUser: delete a user's state, see streams.control)
    items       -> WorkerCore.add_items -> catalog global table (every worker has all items)
    bad records -> dead-letter topic, with the original bytes and the reason

Requests and feedback skip Faust's per-record streams: the consumer hands them to batch
lanes and one task per lane ranks them one by one, or learns them a fetch at a time per
partition, then acks them in groups after their state reached the producer (group commit,
streams.batch_lane.GroupCommit). State lives in the Faust table's RocksDB of each partition,
read and written directly, its changelog sent in record batches at each flush
(streams.partition_state); Faust still creates the
changelog topic and recovers each partition from it on assignment. Requests, impressions
and clicks are keyed by user id and co-partitioned, so a user's state lives in its
partition and follows it across a rebalance. Offsets folded into each state value make
replays after a crash harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import faust
from faust.streams import _current_event  # the context var Faust tables route writes by

from online.config import DEFAULT_SCENARIO, EngineSettings, PolicyConfig, ScenarioConfig, SlatestreamConfig
from online.events import encode_event
from streams.batch_lane import BatchLane, Chunk, GroupCommit, records
from streams.control import control_topic, ensure_control_topic
from streams.dead_letter import DeadLetter, encode_dead_letter
from streams.faust_app import FAUST_VERSION, make_app
from streams.partition_state import StateTables, faust_send_many
from streams.settings import StreamSettings
from streams.state_changelog import state_changelog_topic, worker_app_id
from streams.topics import TopicNames
from streams.worker_core import Embed, Record, WorkerCore

log = logging.getLogger("slatestream.worker")

STATE_TABLE, CATALOG_TABLE = "state", "catalog"
"""The worker's Faust tables (changelog topics "<app id>-state-changelog", "-catalog-changelog")."""


@dataclass(frozen=True)
class WorkerConfig:
    """Model-side settings of a worker (infrastructure is in StreamSettings).

    Requests and feedback come through batch lanes (streams.batch_lane): what one fetch
    brought, at most `request_batch_size` requests (ranked one by one, each slate sent as
    soon as it is ready) or `batch_size` feedback records (learned per partition). Where
    lanes are not available (another Faust version), agents take them: requests within
    `request_wait_s`, feedback up to `batch_size` within `batch_wait_s`. A list only fills up
    under a backlog; then several events of one user fall in one partition's share and share
    that user's state read, Gram update and write, so larger lists learn faster, but each
    partition's share holds the event loop (~50 us per record: requests wait up to ~100 ms
    at 8,000 records over 4 partitions). Items are taken
    up to `item_batch_size` within `batch_wait_s` (one embedding call per take). While
    the catalog is still empty (a fresh start), requests wait up to
    `empty_catalog_wait_s` for the items agent before they are ranked or dead-lettered.
    `user_cache_size` decoded user states stay in memory per partition (~5 KB each for
    linear TS at d = 32): a worker is the only writer of its partitions' states, and the
    cache is dropped on every rebalance.

    Learned state reaches the changelog in groups (a group commit): the feedback lane sends
    the last value of each key it wrote to the changelog and acks the records those writes
    came from when no record waits, or `flush_interval_s` after the last flush, or once
    `flush_max_keys` keys wait; a user hit by several batches in between costs one changelog
    record. Ranking reads the partition's RocksDB, written at once (but the request lane's
    flush after each slate sends the feedback lane's waiting writes too).

    `config` (a configuration file's content, see online.config) declares the scenarios and
    their policies; without it, one scenario serves every request with `policy` and `n_draws`.
    """

    policy: str = "linear_ts"
    dim: int = 32
    n_draws: int = 64
    batch_size: int = 8_000
    batch_wait_s: float = 0.05
    item_batch_size: int = 500
    request_batch_size: int = 64
    request_wait_s: float = 0.002
    user_cache_size: int = 20_000
    flush_interval_s: float = 0.5
    flush_max_keys: int = 20_000
    empty_catalog_wait_s: float = 10.0
    seed: int = 0
    config: SlatestreamConfig | None = None

    def scenarios(self) -> SlatestreamConfig:
        """The scenarios this worker serves."""
        if self.config is not None:
            return self.config
        return SlatestreamConfig(engine=EngineSettings(n_draws=self.n_draws, user_cache_size=self.user_cache_size),
                                 scenarios={DEFAULT_SCENARIO: ScenarioConfig(policy=PolicyConfig(name=self.policy))})


@dataclass
class BatchStats:
    """An agent's batches since start: how many, records in them, seconds spent processing."""

    batches: int = 0
    records: int = 0
    busy_s: float = 0.0

    def add(self, records: int, seconds: float) -> None:
        self.batches += 1
        self.records += records
        self.busy_s += seconds

    def __str__(self) -> str:
        mean = self.records / self.batches if self.batches else 0.0
        return f"{self.batches} batches, {mean:.1f} records/batch, {self.busy_s:.1f} s busy"


@contextlib.contextmanager
def partition_context(event: Any) -> Iterator[None]:
    """Make `event` Faust's current event, so table reads and writes use its partition."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def _by_partition(records: Sequence[Any], partition_of: Callable[[Any], int] = lambda m: m.partition,
                  ) -> dict[int, list[Any]]:
    """Records (topic, partition, offset, key, value: aiokafka ConsumerRecords from a lane,
    Faust ConsumerMessages from an agent), or events with `partition_of`, grouped by
    partition, in order."""
    groups: dict[int, list[Any]] = {}
    for record in records:
        groups.setdefault(partition_of(record), []).append(record)
    return groups


def _record(kind: str, message: Any) -> Record:
    return Record(kind, message.topic, message.partition, message.offset, message.key, bytes(message.value or b""))


def create_app(settings: StreamSettings, config: WorkerConfig, embed: Embed) -> tuple[faust.App, WorkerCore]:
    """The Faust app and the core it drives (topics must exist: ensure_topics, ensure_control_topic)."""
    names = TopicNames.from_settings(settings)
    app = make_app(settings)

    def raw_topic(*topic_names: str) -> faust.TopicT:
        return app.topic(*topic_names, key_type=bytes, value_type=bytes, key_serializer="raw",
                         value_serializer="raw", partitions=settings.partitions)

    state_table = app.Table(STATE_TABLE, partitions=settings.partitions, key_type=bytes, value_type=bytes)
    catalog_dirty = [True]

    async def catalog_changed(_: Any) -> None:
        catalog_dirty[0] = True

    catalog_table = app.GlobalTable(CATALOG_TABLE, partitions=settings.partitions, key_type=bytes,
                                    on_changelog_event=catalog_changed,
                                    value_type=bytes)
    tables = StateTables(state_table, faust_send_many(app))
    core = WorkerCore(config.scenarios(), tables, embed, config.dim, config.seed,
                      request_ttl_s=settings.request_ttl_s)
    slates_topic = raw_topic(names.slates)
    dead_topic = raw_topic(names.dead_letter)

    async def send_dead(letters: Sequence[DeadLetter]) -> None:
        for letter in letters:
            key = letter.key.encode() if letter.key is not None else None
            await dead_topic.send(key=key, value=encode_dead_letter(letter))

    @app.agent(raw_topic(names.items))
    async def items(stream: faust.StreamT) -> None:
        async for events in stream.take_events(config.item_batch_size, within=config.batch_wait_s):
            for group in _by_partition(events, lambda event: event.message.partition).values():
                added, dead = core.add_items([_record("items", e.message) for e in group])
                with partition_context(group[-1]):
                    for item, value in added:
                        catalog_table[item.item_id.encode()] = value
                await send_dead(dead)

    stats = {"requests": BatchStats(), "feedback": BatchStats()}
    feedback_kinds = {names.impressions: "impressions", names.clicks: "clicks", control_topic(settings): "control"}
    request_lane = BatchLane([names.requests], max_batch=config.request_batch_size)
    feedback_lane = BatchLane(feedback_kinds, max_batch=config.batch_size)
    lanes_on = app.add_batch_lane(request_lane) and app.add_batch_lane(feedback_lane)
    idle_wait_s = 1.0  # agents whose records take a lane only wake up to find nothing

    async def rank_requests(messages: Sequence[Any]) -> None:
        started = time.perf_counter()
        sync_catalog()
        waited = 0.0
        while len(core.catalog) == 0 and waited < config.empty_catalog_wait_s:
            await asyncio.sleep(0.05)  # at start-up, let the items agent load the catalog first
            waited += 0.05
            sync_catalog()
        for message in messages:  # one at a time: each slate leaves as soon as it is ranked
            slates, dead = core.rank([_record("requests", message)])
            for slate in slates:
                await slates_topic.send(key=slate.user_id.encode(), value=encode_event(slate))
            await tables.flush()
            await send_dead(dead)
        stats["requests"].add(len(messages), time.perf_counter() - started)

    async def learn_feedback(messages: Sequence[Any], flush: bool = True) -> None:
        """Learn a list of feedback records; with `flush`, hand their state writes to the
        producer before returning (they are acked next)."""
        started = time.perf_counter()
        sync_catalog()
        for group in _by_partition(messages).values():
            learned = [_record(feedback_kinds[m.topic], m) for m in group]
            await send_dead(core.learn(learned))
            await asyncio.sleep(0)  # let requests in between partitions
        if flush:
            await tables.flush()  # before the records are acked
        stats["feedback"].add(len(messages), time.perf_counter() - started)

    @app.agent(raw_topic(names.requests))
    async def requests(stream: faust.StreamT) -> None:
        """Subscribes the requests topic; records arrive here only where the lanes are off."""
        within = idle_wait_s if lanes_on else config.request_wait_s
        async for events in stream.take_events(config.request_batch_size, within=within):
            await rank_requests([event.message for event in events])

    @app.agent(raw_topic(*feedback_kinds))
    async def feedback(stream: faust.StreamT) -> None:
        """Subscribes the feedback topics; records arrive here only where the lanes are off."""
        within = idle_wait_s if lanes_on else config.batch_wait_s
        async for events in stream.take_events(config.batch_size, within=within):
            await learn_feedback([event.message for event in events])

    async def drive(lane: BatchLane, handle: Callable[[list[Chunk]], Awaitable[None]]) -> None:
        """Process a lane's lists for good (`handle` acks them); a bug stops the worker."""
        if not lanes_on:
            log.info("batch lanes off (Faust %s, lanes need %s)", faust.__version__, FAUST_VERSION)
            return
        log.info("batch lanes on for %s", ", ".join(sorted(lane.topics)))
        try:
            async for batch in lane.batches():
                await handle(batch)
        except Exception as error:  # bad input is dead-lettered: an exception here is a bug
            log.exception("batch lane of %s failed", sorted(lane.topics))
            await app.crash(error)
            raise

    feedback_commit = GroupCommit(feedback_lane, tables.flush, tables.pending_keys, config.flush_interval_s,
                                  config.flush_max_keys)

    async def learn_and_commit(batch: list[Chunk]) -> None:
        """The feedback lane's handler: learn, then ack by group commit (see WorkerConfig)."""
        await learn_feedback(records(batch), flush=False)
        await feedback_commit.processed(batch)

    async def rank_and_ack(batch: list[Chunk]) -> None:
        await rank_requests(records(batch))
        request_lane.ack(batch)

    @app.task
    async def requests_lane() -> None:
        await drive(request_lane, rank_and_ack)

    @app.task
    async def feedback_lane_task() -> None:
        await drive(feedback_lane, learn_and_commit)

    def sync_catalog() -> None:
        """Items embedded by other workers (or before a restart) join the local catalog.

        Counting the table's keys scans RocksDB, so it runs only after the catalog
        changelog delivered something (`on_changelog_event`), at start-up and every 30 s
        (a safety net: a key scan costs ~10 ms, a latency spike for the request in hand).
        """
        if not catalog_dirty[0]:
            return
        catalog_dirty[0] = False
        if len(core.catalog) >= len(catalog_table):
            return
        for key, value in catalog_table.items():
            if key.decode() not in core.catalog:
                core.load_catalog_value(bytes(value))

    @app.timer(interval=30.0)
    async def recheck_catalog() -> None:
        catalog_dirty[0] = True

    @app.timer(interval=5.0)
    async def report_counts() -> None:
        log.info("counts %s", core.counts)
        log.info("batches %s", "; ".join(f"{name}: {value}" for name, value in stats.items()))
        log.info("changelog %d state records sent in %d flushes, %.2f s", tables.records_sent, tables.flushes,
                 tables.flush_s)
        if feedback_lane.first_taken_at is not None and feedback_commit.last_commit_at is not None:
            log.info("feedback lane: %d records taken from %.3f, %d committed, the last commit at %.3f (unix s)",
                     feedback_lane.taken, feedback_lane.first_taken_at, feedback_commit.committed,
                     feedback_commit.last_commit_at)

    async def swap_partitions(drop_waiting: bool) -> None:
        """With both lanes held (no list in hand, none taken meanwhile): flush every state
        write and ack what was processed (the group commit), deliver the changelog before the
        partitions move, then forget the per-partition caches and tables."""
        async with request_lane.held(drop_waiting) as dropped_requests, feedback_lane.held(drop_waiting) as dropped:
            core.snapshot_windows()  # written into the tables, flushed by the commit
            await feedback_commit.commit()
            await app.producer.flush()
            core.partitions_changed()
            tables.partitions_changed()
        if dropped_requests or dropped:
            log.info("rebalance: dropped %d waiting requests and %d feedback records (delivered again)",
                     dropped_requests, dropped)

    async def on_revoked(*_: Any, **__: Any) -> None:
        await swap_partitions(drop_waiting=True)

    async def on_assigned(_sender: Any, assigned: Any = (), *_: Any, **__: Any) -> None:
        await swap_partitions(drop_waiting=False)
        active = sorted({tp.partition for tp in assigned if tp.topic in feedback_kinds})
        log.info("assigned partitions %s", active)
        # What exists now (Faust, modules, the catalog so far) lives as long as the process: keep
        # it out of the cyclic collector's full passes, which otherwise cost ~20 us per learned
        # event in allocation-heavy batches (bench/worker_throughput.py, in-process baseline).
        gc.collect()
        gc.freeze()

    app.on_partitions_revoked.connect(on_revoked)
    app.on_partitions_assigned.connect(on_assigned)
    return app, core


def internal_topic_specs(settings: StreamSettings) -> dict[str, dict[str, Any]]:
    """The topics Faust would create at start-up: the tables' compacted changelogs (one
    partition per source partition) and the assignor's one-partition leader topic."""
    app_id = worker_app_id(settings)
    changelog = {"num_partitions": settings.partitions, "replication_factor": settings.replication_factor,
                 "configs": {"cleanup.policy": "compact"}}
    return {state_changelog_topic(settings): changelog, f"{app_id}-{CATALOG_TABLE}-changelog": changelog,
            f"{app_id}-__assignor-__leader": {"num_partitions": 1,
                                              "replication_factor": settings.replication_factor, "configs": {}}}


def run_worker(settings: StreamSettings, config: WorkerConfig, embed: Embed, loglevel: str = "info") -> None:
    """Create the topics if needed, then run one worker until SIGTERM/SIGINT.

    Faust's internal topics are created here too, before Faust starts: when Faust creates
    them itself, a topic made a moment before the group's first assignment can be missing
    from the consumer's metadata ("Ignoring missing topic"), and the worker then waits for
    its partitions until the next metadata refresh (minutes).
    """
    from streams.topics import create_topics, ensure_topics

    ensure_topics(settings)
    ensure_control_topic(settings)
    create_topics(settings, internal_topic_specs(settings))
    app, _ = create_app(settings, config, embed)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    # Faust's terminal spinner sets the root logger to DEBUG when loglevel >= WARNING, and every
    # aiokafka debug call (one per produced record) then builds a log record: ~10 % of a worker.
    worker.spinner = None
    worker.execute_from_commandline()
