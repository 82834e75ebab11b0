"""The worker's two paths: requests ranked and answered, feedback learned.

    requests    -> RequestPath  -> WorkerCore.rank  -> slates topic (keyed by user id)
    impressions -> FeedbackPath -> WorkerCore.learn -> state table (RocksDB, changelogged)
    clicks, control ┘

Both take plain callables (send, flush) and are built and tested without a broker
(tests/streams/worker/test_topology.py); `streams.worker.topology` wires them to the Faust app.
They share one event loop: `RequestsFirst` is how the feedback path makes way for requests.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from online.events import Slate, SlateError
from streams.dead_letter import DeadLetter
from streams.worker.catalog import CatalogFollower
from streams.worker.config import WorkerConfig
from streams.worker.core import WorkerCore
from streams.worker.lanes import BatchLane, equal_pieces
from streams.worker.records import Record

log = logging.getLogger("slatestream.worker")
SendDead = Callable[[Sequence[DeadLetter]], Awaitable[None]]
SendSlate = Callable[[Slate | SlateError], Awaitable[None]]
Flush = Callable[..., Awaitable[Any]]
StartFlush = Callable[..., Awaitable[Any]]
"""start_flush(acknowledged=...): takes the pending writes when called (not when awaited)."""


def by_partition(messages: Iterable[Any]) -> dict[int, list[Any]]:
    """Records (anything with a `partition`) grouped by partition, in order."""
    groups: dict[int, list[Any]] = {}
    for message in messages:
        groups.setdefault(message.partition, []).append(message)
    return groups


def to_record(kind: str, message: Any) -> Record:
    """A consumed record (aiokafka's or Faust's) as the core's `Record` of topic role `kind`."""
    return Record(kind, message.topic, message.partition, message.offset, message.key, bytes(message.value or b""))


def as_records(kinds: Mapping[str, str], messages: Sequence[Any]) -> Sequence[Record]:
    """One partition's consumed records as the core's `Record`s: as they are where the consumer
    made them so (`streams.worker.aiokafka_private`), else each converted (`to_record`, kind
    by topic)."""
    if set(map(type, messages)) == {Record}:  # one C-level pass
        return cast(Sequence[Record], messages)
    return [message if type(message) is Record else to_record(kinds[message.topic], message) for message in messages]


@dataclass
class BatchStats:
    """A path's batches since start: how many, records in them, seconds spent processing, and
    their groups, named by `group_name`: the request path's groups answered after one
    acknowledged flush each, the feedback path's learn calls (one `WorkerCore.learn` each, of a
    partition's share of a list or, while requests come in, a piece of it; timed by `add_group`:
    `group_s` wall seconds in those calls, `group_cpu_s` of them on the CPU, the event loop
    thread's CPU time; the rest of the wall time the thread waited for a core; `largest_group`
    the most records one of them held)."""

    batches: int = 0
    records: int = 0
    busy_s: float = 0.0
    groups: int = 0
    group_name: str = "answered groups"
    group_s: float = 0.0
    group_cpu_s: float = 0.0
    largest_group: int = 0

    def add(self, records: int, seconds: float) -> None:
        self.batches += 1
        self.records += records
        self.busy_s += seconds

    def add_group(self, seconds: float, cpu_seconds: float, records: int) -> None:
        """One timed group of `records` records: `seconds` of wall time, `cpu_seconds` of this
        thread's CPU time."""
        self.groups += 1
        self.group_s += seconds
        self.group_cpu_s += cpu_seconds
        self.largest_group = max(self.largest_group, records)

    def __str__(self) -> str:
        mean = self.records / self.batches if self.batches else 0.0
        groups = f", {self.groups} {self.group_name}" if self.groups else ""
        if self.group_s:
            groups += (f" in {self.group_s:.2f} s ({self.group_cpu_s:.2f} s on the CPU), the largest of "
                       f"{self.largest_group} records")
        return f"{self.batches} batches, {mean:.1f} records/batch, {self.busy_s:.1f} s busy{groups}"


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
    wait one round trip instead of n (each waited its own: ~1,000 requests/s at most).

    The round trips overlap the ranking: a group's flush starts as soon as the group is
    ranked (`start_flush` takes the pending writes when called) and the next group is ranked
    while Kafka acknowledges it; each group's slates go out once its own flush is acknowledged
    and the groups before it are answered. (Waiting out each flush before ranking on left the
    worker idle for a round trip every `group_s` under load.)
    """

    def __init__(self, core: WorkerCore, catalog: CatalogFollower, send_slate: SendSlate, send_dead: SendDead,
                 start_flush: StartFlush, stats: BatchStats, empty_catalog_wait_s: float,
                 observe: Callable[[Slate, float], None] | None = None,
                 group_s: float = WorkerConfig.request_group_s) -> None:
        self.core, self.catalog, self.stats = core, catalog, stats
        self.send_slate, self.send_dead, self.start_flush = send_slate, send_dead, start_flush
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
        groups: deque[AnsweringGroup] = deque()  # ranked, not yet answered, in order
        group = AnsweringGroup()
        try:
            for message in messages:
                self._rank_into(group, message)
                if time.perf_counter() - group.started >= self.group_s:
                    groups.append(self._with_flush_started(group))
                    await self._answer_ready(groups)
                    group = AnsweringGroup()
            if group.slates or group.dead:
                groups.append(self._with_flush_started(group))
            while groups:
                await self._answer(groups.popleft())
        finally:
            for unanswered in groups:  # an answer failed: the flushes still running are not awaited
                unanswered.flushing.add_done_callback(_retrieved)
        self.stats.add(len(messages), time.perf_counter() - started)

    def _rank_into(self, group: AnsweringGroup, message: Any) -> None:
        """Rank one request record into `group` (its slate or SlateError, its dead letter)."""
        ranking = time.perf_counter()
        ranked, refused = self.core.rank([to_record("requests", message)])
        for slate in ranked:
            if isinstance(slate, Slate):
                self.observe(slate, time.perf_counter() - ranking)
        group.slates.extend(ranked)
        group.dead.extend(refused)

    def _with_flush_started(self, group: AnsweringGroup) -> AnsweringGroup:
        """`group` with its flush started (acknowledged when it served a slate)."""
        group.flushing = asyncio.ensure_future(
            self.start_flush(acknowledged=any(isinstance(slate, Slate) for slate in group.slates)))
        return group

    async def _answer_ready(self, groups: deque[AnsweringGroup]) -> None:
        """Let the event loop run once (the callbacks ready then run: flushes in flight, the
        producer's sender, acknowledgements, fetches), then answer the groups at the head whose
        flush is acknowledged."""
        await asyncio.sleep(0)
        while groups and groups[0].flushing.done():
            await self._answer(groups.popleft())

    async def _answer(self, group: AnsweringGroup) -> None:
        """Once the group's flush is acknowledged (it raises if it failed), send its answers in order."""
        await group.flushing
        for slate in group.slates:
            await self.send_slate(slate)
        await self.send_dead(group.dead)
        self.stats.groups += 1


@dataclass
class AnsweringGroup:
    """Requests ranked together: their answers (Slate or SlateError, in order), their dead letters,
    and the flush that makes them durable (set once the group is ranked)."""

    slates: list[Slate | SlateError] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    flushing: asyncio.Future[Any] = field(init=False)


def _retrieved(future: asyncio.Future[Any]) -> None:
    """Take a finished future's exception, so that asyncio does not log it as never retrieved."""
    if not future.cancelled():
        future.exception()


@dataclass
class RequestsFirst:
    """How the feedback path makes way for requests, which share its event loop.

    A learn call holds the loop: ~20 us a record, ~0.5 s for a list of 26,000 records of one
    partition while a backlog is learned. Requests fetched meanwhile wait for it, and so does
    each step of answering them (the fetch's response, the acknowledged flush before the
    slates go out), so a request waited for several learn calls. Now, before each learn call,
    the feedback path waits until the request lane holds nothing (no request waiting, no list
    being ranked and answered), at most `max_wait_s`; and while requests come in (a list taken
    in the last `recent_s` seconds) it learns a partition's share in pieces of at most
    `piece_records` records. Without requests the shares are learned whole (larger calls learn
    faster: several events of a user share its state read and write).
    """

    lane: BatchLane
    piece_records: int = WorkerConfig.serving_piece_records
    recent_s: float = WorkerConfig.serving_window_s
    max_wait_s: float = WorkerConfig.requests_first_wait_s
    pause_s: float = 0.001

    def serving(self) -> bool:
        """Whether the request lane took a list in the last `recent_s` seconds."""
        taken = self.lane.last_taken_monotonic
        return taken is not None and time.monotonic() - taken <= self.recent_s

    def pieces(self, group: Sequence[Any]) -> list[Sequence[Any]]:
        """`group` (one partition's records, in order) cut into the learn calls to make (slices
        of it: a list's are lists)."""
        if len(group) <= self.piece_records or not self.serving():
            return [group]
        return equal_pieces(group, self.piece_records)

    async def wait(self) -> None:
        """Before a learn call: until the request lane is idle, at most `max_wait_s`."""
        await self.lane.wait_idle(self.max_wait_s)

    async def between(self) -> None:
        """After a learn call: one turn of the event loop, or while requests come in
        `pause_s` of it (a fetch's response takes several turns to reach the request lane)."""
        await asyncio.sleep(self.pause_s if self.serving() else 0)


class FeedbackPath:
    """Learn impression, click and control records, one partition's share at a time (in pieces
    while requests come in, each after the request lane had its turn: `RequestsFirst`)."""

    def __init__(self, core: WorkerCore, catalog: CatalogFollower, kinds: Mapping[str, str], send_dead: SendDead,
                 flush: Flush, stats: BatchStats, observe: Callable[[float], None] | None = None,
                 requests_first: RequestsFirst | None = None) -> None:
        self.core, self.catalog, self.kinds, self.stats = core, catalog, kinds, stats
        self.send_dead, self.flush = send_dead, flush
        self.observe = observe or (lambda seconds: None)
        self.requests_first = requests_first

    async def handle(self, messages: Sequence[Any], flush: bool = True) -> None:
        """Learn a list of records; with `flush`, hand their state writes to the producer
        before returning (they are acked next)."""
        started = time.perf_counter()
        await wait_until_caught_up(self.catalog)
        first = self.requests_first
        for group in by_partition(messages).values():
            for piece in [group] if first is None else first.pieces(group):
                if first is not None:
                    await first.wait()
                await self._learn(piece)
                await (asyncio.sleep(0) if first is None else first.between())  # let requests in
        if flush:
            await self.flush()
        self.stats.add(len(messages), time.perf_counter() - started)

    async def _learn(self, messages: Sequence[Any]) -> None:
        """One learn call: records of one partition, in order."""
        records = as_records(self.kinds, messages)
        learning, learning_cpu = time.perf_counter(), time.thread_time()
        dead = self.core.learn(records)
        seconds = time.perf_counter() - learning
        self.observe(seconds)
        self.stats.add_group(seconds, time.thread_time() - learning_cpu, len(records))
        await self.send_dead(dead)
