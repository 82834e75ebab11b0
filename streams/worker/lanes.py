"""A batch lane: records of chosen topics handed over in lists, past Faust's per-record stream.

Faust delivers every record to an agent one by one: the consumer wraps it in a
`ConsumerMessage`, the conductor decodes it into an `Event`, puts it on the agent's queue,
and the stream iterates, acks and tracks it. On 2 cores that path alone tops out at ~8,000
records/s for an agent that only counts (bench/faust_floor.py), well under what a learner
that works on whole batches can take. For the topics of a lane,
`streams.worker.faust_private.BatchDrainConsumer` hands each fetch's records of one partition to the
lane as they came from aiokafka (a `Chunk`: the partition and its `ConsumerRecord`s, each
with topic, partition, offset, key, value), without a Faust object or a Python call per
record, and one task takes them as lists of chunks (`BatchLane.batches`): what waits, up to
`max_batch` records, the oldest chunk's partition first (`BatchLane._take`), so the batches
grow with the load.
`records(batch)` flattens a list of chunks into its records, in order per partition.

Offsets and rebalances keep Faust's rules:

- **Commit.** The task acks each chunk to Faust's consumer after processing it (`ack`:
  the consumer's `ack_offsets`, Faust's per-message acknowledgement for a whole run of
  offsets); Faust commits contiguous acked offsets, after flushing its producer. A task that
  writes state acks through a `GroupCommit`: processed lists wait until one flush hands all
  their state writes to the producer, then are acked together.
- **Back-pressure.** While more than `high_water` records wait, the lane's partitions are
  paused in the fetcher (Faust's own `on_buffer_full`) and resumed below `low_water`.
- **Revocation.** The worker's rebalance handlers hold the lanes (`held`): they wait for
  the list in hand, drop what waits (never acked, so redelivered to the partition's next
  owner), flush and ack what was processed, and swap the partitions' state before the lane
  takes another list. (The app runs with `stream_wait_empty=False`, so Faust skips
  `Consumer.wait_empty`, whose override settles the lanes only if that setting changes.)
  A chunk that slipped in after that (fetched just before the revocation) is dropped
  when taken if its partition is no longer assigned, and never acked if it was revoked.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any, NamedTuple


class Chunk(NamedTuple):
    """Records of one partition, in offset order, as one fetch brought them.

    tp: the (topic, partition) they came from (Faust's TP or aiokafka's TopicPartition);
    records: objects with topic, partition, offset, key and value (aiokafka ConsumerRecords).
    """

    tp: Any
    records: Sequence[Any]


def equal_pieces(items: Sequence[Any], most: int) -> list[Sequence[Any]]:
    """`items` cut in order into the fewest pieces of at most `most`, as equal as can be
    (1,500 at 1,000: 750 + 750, not 1,000 + 500)."""
    count = -(-len(items) // most)
    size = -(-len(items) // count) if count else 1
    return [items[start:start + size] for start in range(0, len(items), size)]


def records(batch: Iterable[Chunk]) -> list[Any]:
    """The records of a list of chunks, flattened (in order within each partition)."""
    return [record for chunk in batch for record in chunk.records]


def fetch_wait_s(lanes: Iterable[BatchLane], idle_s: float = 1.0, held_back_s: float = 0.01) -> float:
    """How long the consumer's next fetch call may wait for records: `held_back_s` while a lane
    holds partitions paused, else `idle_s`. A fetch call looks at the records waiting in the
    consumer when it begins, then only when a fetch returns: a partition resumed meanwhile, its
    records waiting in the consumer since its pause, would wait for the next fetch to return (up
    to the broker's wait, `streams.worker.aiokafka_private.LANE_FETCH_MAX_WAIT_MS`) or for `idle_s`
    to run out."""
    return held_back_s if any(lane.holds_back for lane in lanes) else idle_s


class BatchLane:
    """Records of `topics`, taken in lists of chunks holding at most `max_batch` records.

    Args:
        topics: topic names whose records bypass Faust's streams.
        max_batch: most records per list handed to the task (a chunk is split to fit).
        high_water, low_water: pause the lane's partitions above high_water waiting records,
            resume below low_water.
        whole_shares: fill a list with other partitions only where all of a partition's waiting
            records fit (its share then one learn call, not split over lists: `_take`).
    """

    def __init__(self, topics: Iterable[str], max_batch: int = 2_000, high_water: int = 20_000,
                 low_water: int = 5_000, whole_shares: bool = False) -> None:
        if not 0 < low_water < high_water or max_batch < 1:
            raise ValueError(f"need 0 < low_water < high_water and max_batch >= 1, got {low_water}, "
                             f"{high_water}, {max_batch}")
        self.topics = frozenset(topics)
        self.max_batch = max_batch
        self.high_water = high_water
        self.low_water = low_water
        self.whole_shares = whole_shares
        self.consumer: Any = None  # Faust's consumer, set by BatchDrainConsumer on first use
        self._waiting: deque[Chunk] = deque()
        self._count = 0  # records in _waiting
        self._paused: set[Any] = set()
        self._arrived: asyncio.Event | None = None
        self._in_hand = asyncio.Lock()
        self.taken = 0  # records handed to the task so far
        self.last_offsets: dict[Any, int] = {}  # (topic, partition) -> offset of the last record fetched
        self.first_taken_at: float | None = None  # wall clock (unix s) of the first list handed over
        self.last_taken_monotonic: float | None = None  # time.monotonic() of the last list handed over
        self._idle: asyncio.Event | None = None  # set when a list ends with nothing waiting (`wait_idle`)

    def _event(self) -> asyncio.Event:
        if self._arrived is None:
            self._arrived = asyncio.Event()
        return self._arrived

    def _idle_event(self) -> asyncio.Event:
        if self._idle is None:
            self._idle = asyncio.Event()
        return self._idle

    @property
    def busy(self) -> bool:
        """Records wait, or a list is in hand."""
        return bool(self._count) or self._in_hand.locked()

    async def wait_idle(self, timeout_s: float) -> None:
        """Return once the lane is not `busy` (what waited was taken and processed), or after
        `timeout_s` seconds."""
        deadline = time.monotonic() + timeout_s
        while self.busy:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            idle = self._idle_event()
            idle.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(idle.wait(), left)

    def add(self, consumer: Any, tp: Any, fetched: Sequence[Any]) -> None:
        """Called by the consumer's drain loop with a fetch's records of partition `tp`."""
        if not fetched:
            return
        self.consumer = consumer
        self.last_offsets[tp] = int(fetched[-1].offset)
        if len(fetched) <= self.max_batch:
            self._waiting.append(Chunk(tp, fetched))
        else:  # 9,000 at 8,000: 4,500 + 4,500, not 8,000 + 1,000
            self._waiting.extend(Chunk(tp, piece) for piece in equal_pieces(fetched, self.max_batch))
        self._count += len(fetched)
        if self._count >= self.max_batch:
            self._event().set()
        if self._count > self.high_water and tp not in self._paused:
            self._paused.add(tp)
            consumer.on_buffer_full(tp)

    @property
    def waiting(self) -> int:
        """Records fetched and not yet taken."""
        return self._count

    def fetched(self) -> None:
        """Called after each fetch's records were added: wake the task (records accumulate
        until then, so a busy lane hands over whole fetches, not the first few records)."""
        if self._waiting:
            self._event().set()

    @property
    def holds_back(self) -> bool:
        """Whether some of the lane's partitions are paused (above high water, until low water)."""
        return bool(self._paused)

    def _resume_if_low(self) -> None:
        if self._paused and self._count < self.low_water:
            for tp in self._paused:
                self.consumer.on_buffer_drop(tp)
            self._paused.clear()

    def _take(self) -> list[Chunk]:
        """Up to max_batch waiting records: the oldest chunk, then the waiting records of its
        partition number (of any lane topic: the worker learns a list one partition's share at a
        time; the last chunk taken split to fill the list), then other chunks that fit whole
        (with `whole_shares`: other partitions all of whose waiting records fit, in the order of
        their oldest chunk); each topic-partition's records in the order they came.

        A chunk is one fetch's records of one topic-partition (`add` splits a fetch larger than
        max_batch into equal pieces). The worker pays per user and share (its state read,
        updated, encoded and written), so a share should hold as many of its partition's records
        as a list can: filling a list in arrival order mixed the tail of one topic-partition's
        fetch with the head of the next, usually another partition's (a mean of 5,003 records a
        learn call in bench/worker_throughput.py, lists of 8,000), for no shorter wait of a
        request (a share is at most max_batch records either way). Filling with whole chunks
        split shares too: with ~13,000 records of each of 4 partitions waiting, a list of 32,000
        took a partition's impressions and the next list its clicks (bench/worker_throughput.py
        --warm: 6-7 learn calls where there are 4 shares), so each user's state was written and
        sent to the changelog at two flushes: the feedback lane takes whole shares (`whole_shares`)."""
        first = self._waiting.popleft()  # at most max_batch records: `add` cut it so
        batch = [first]
        room = self._gather(batch, self.max_batch - len(first.records), first.tp[1])
        room = self._gather_shares(batch, room) if self.whole_shares else self._gather(batch, room, None)
        self._count -= self.max_batch - room
        return batch

    def _gather(self, batch: list[Chunk], room: int, partition: int | None) -> int:
        """Move waiting chunks to `batch` in the order they came while `room` (records) lasts,
        never one of a topic-partition whose older chunk stays waiting: with `partition`, only
        that partition number's, the last one split to fill the room; with None, whole chunks
        that fit. Returns the room left."""
        left: deque[Chunk] = deque()
        passed: set[Any] = set()  # topic-partitions with a chunk left waiting
        for chunk in self._waiting:
            wanted = room > 0 and chunk.tp not in passed and partition in (None, chunk.tp[1])
            if wanted and partition is not None and len(chunk.records) > room:  # fill the share
                left.append(Chunk(chunk.tp, chunk.records[room:]))
                passed.add(chunk.tp)
                chunk = Chunk(chunk.tp, chunk.records[:room])
            if wanted and len(chunk.records) <= room:
                batch.append(chunk)
                room -= len(chunk.records)
            else:
                left.append(chunk)
                passed.add(chunk.tp)
        self._waiting = left
        return room

    def _gather_shares(self, batch: list[Chunk], room: int) -> int:
        """Move to `batch` every waiting chunk of each partition number whose waiting records all
        fit in `room` (records), partitions in the order of their oldest waiting chunk, chunks in
        the order they came. Returns the room left."""
        waiting: dict[int, int] = {}  # partition number -> its waiting records
        for chunk in self._waiting:
            waiting[chunk.tp[1]] = waiting.get(chunk.tp[1], 0) + len(chunk.records)
        taken: set[int] = set()
        for partition, count in waiting.items():
            if count <= room:
                taken.add(partition)
                room -= count
        batch.extend(chunk for chunk in self._waiting if chunk.tp[1] in taken)
        self._waiting = deque(chunk for chunk in self._waiting if chunk.tp[1] not in taken)
        return room

    async def batches(self) -> AsyncIterator[list[Chunk]]:
        """Lists of waiting chunks, oldest first; each is processed while `in_hand` is held.

        The consumer of this iterator must finish a list (process, then `ack`) before asking
        for the next: the lane's lock is held from yield to the next `__anext__`.
        """
        while True:
            await self._event().wait()
            async with self._in_hand:
                if not self._waiting:
                    self._event().clear()
                    continue
                batch = self._take()
                if not self._waiting:
                    self._event().clear()
                self._resume_if_low()
                owned = self.consumer.assignment()
                batch = [chunk for chunk in batch if chunk.tp in owned]
                if batch:
                    if self.first_taken_at is None:
                        self.first_taken_at = time.time()
                    self.last_taken_monotonic = time.monotonic()
                    self.taken += sum(len(chunk.records) for chunk in batch)
                    yield batch
            if not self._waiting:
                self._idle_event().set()

    def ack(self, batch: Iterable[Chunk]) -> int:
        """Tell Faust these records are processed (their offsets may be committed); chunks of
        partitions no longer assigned are skipped (their next owner processes them again).
        Returns how many records were acked."""
        if self.consumer is None:
            return 0  # no record taken yet, so nothing to ack (a commit at the first assignment)
        ack_offsets, owned = self.consumer.ack_offsets, self.consumer.assignment()
        acked = 0
        for chunk in batch:
            if chunk.tp in owned:
                ack_offsets(chunk.tp, [record.offset for record in chunk.records])
                acked += len(chunk.records)
        return acked

    def _drop_waiting(self) -> int:
        dropped = self._count
        self._waiting.clear()
        self._count = 0
        if self.consumer is not None:  # un-pause without re-activating: the assignment decides that now
            for tp in self._paused:
                self.consumer.forget_paused(tp)
        self._paused.clear()
        if self._idle is not None:
            self._idle.set()  # `wait_idle` looks again
        return dropped

    def drop_waiting_for_seek(self) -> dict[Any, int]:
        """Drop every waiting record (never acked) and return, per topic-partition, the offset of
        the first one dropped, to fetch them again from there (`BatchDrainConsumer.perform_seek`)."""
        firsts: dict[Any, int] = {}
        for chunk in self._waiting:
            firsts.setdefault(chunk.tp, int(chunk.records[0].offset))
        self._drop_waiting()
        return firsts

    async def settle(self) -> int:
        """Drop every waiting record and wait for the list in hand; returns how many were dropped."""
        async with self.held(drop=True) as dropped:
            return dropped

    @contextlib.asynccontextmanager
    async def held(self, drop: bool) -> AsyncIterator[int]:
        """Wait for the list in hand, then take no list until the block exits (a rebalance
        handler flushes and swaps the partitions' state meanwhile). With `drop`, what waits
        is dropped first (never acked, so delivered again). Yields how many were dropped."""
        dropped = self._drop_waiting() if drop else 0
        async with self._in_hand:
            yield dropped


class GroupCommit:
    """Acks a lane's processed lists in groups, each after one `flush` of their state writes.

    A list is flushed and acked with those before it when no record waits in the lane (so an
    idle worker keeps nothing unflushed), when `interval_s` passed since the last flush, or when
    `pending_keys()` reaches `max_keys` (bounds the memory of the waiting writes). A key
    written by several lists in between is flushed once. A rebalance handler calls `commit`
    while it holds the lane; should a commit still miss acks, those records are delivered
    again and must be idempotent (the worker skips them by the offsets in its state).

    Args:
        lane: the lane whose lists are acked.
        flush: async, hands every state write made so far to the producer.
        pending_keys: how many keys wait for the next flush.
        interval_s, max_keys: the bounds above.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(self, lane: BatchLane, flush: Callable[[], Awaitable[Any]], pending_keys: Callable[[], int],
                 interval_s: float, max_keys: int, clock: Callable[[], float] = time.monotonic) -> None:
        if interval_s < 0 or max_keys < 1:
            raise ValueError(f"need interval_s >= 0 and max_keys >= 1, got {interval_s}, {max_keys}")
        self.lane = lane
        self.flush = flush
        self.pending_keys = pending_keys
        self.interval_s = interval_s
        self.max_keys = max_keys
        self.clock = clock
        self.unacked: list[Chunk] = []
        self.flushes = 0
        self.committed = 0  # records acked after their flush (those of revoked partitions not counted)
        self.last_commit_at: float | None = None  # wall clock (unix s) when the last commit that acked ended
        self._last_flush = clock()

    async def processed(self, batch: Iterable[Chunk]) -> bool:
        """Record a processed list; flush and ack when a bound says so. True if it flushed."""
        self.unacked.extend(batch)
        if (self.lane.waiting and self.clock() - self._last_flush < self.interval_s
                and self.pending_keys() < self.max_keys):
            return False
        await self.commit()
        return True

    async def commit(self) -> None:
        """Flush now and ack every processed list (a rebalance handler calls this while the
        lane is `held`, so the records processed so far are committed with their state)."""
        await self.flush()
        acked = self.lane.ack(self.unacked)
        if acked:
            self.committed += acked
            self.last_commit_at = time.time()
        self.unacked = []
        self._last_flush = self.clock()
        self.flushes += 1
