"""The worker's state table, one partition at a time, with its changelog sent in bulk.

A Faust table sends one changelog message per write through Faust's per-message producer
buffer (`send_soon`, a FutureMessage, the buffer's ebb/flow), which caps a worker that
writes a ~5 KB user state per event at ~3,000 writes/s on 2 cores (bench/faust_floor.py).
The worker still declares the Faust table, so Faust creates its changelog topic, opens one
RocksDB per assigned partition and recovers it from the changelog on assignment; but it
reads that partition's RocksDB directly (`PartitionTable`), and at each flush
(`StateTables.flush`, called by the worker's group commit, streams.worker.lanes.GroupCommit)
writes what changed since the last flush to it in one write batch and sends the changelog
itself, in aiokafka record batches:

- a key written several times between two flushes is written to the RocksDB once (reads
  see every write at once: the pending writes are read first); the worker learning a
  backlog writes a user's state and recent event ids once a batch, so with ~3 batches a
  flush this is a third of the RocksDB writes; until a clean stop writes what is still
  pending, the RocksDB holds no value whose changelog record was not handed to the producer;

- only the last value of each key written since the last flush is sent (a user written by
  five batches in between, or the population state written once per batch, is sent once),
  in the order of last writes (so a tombstone written before a population update still
  precedes it);
- after the last record of a partition is acknowledged by Kafka, its offset is stored as
  Faust's persisted offset for that partition's RocksDB, so recovery after a restart reads
  only the changelog's tail, as it does for Faust's own writes;
- the partition's RocksDB is written without its write-ahead log (the WAL cost ~12 us of
  the ~17 us a 4.8 KB put takes here). The changelog, not the local files, is what the
  state is recovered from: after a crash RocksDB reopens at its last flushed memtable, a
  prefix of the writes, so the persisted offset it holds never claims writes it lacks, and
  Faust's recovery replays the changelog from there. Every write to the partition goes
  through the same handle and therefore skips the WAL too (mixing the two would break the
  prefix); a clean close flushes the memtable.

The guarantee (docs/worker.md) is unchanged: a source record is acknowledged to Faust only
after `flush` handed its changelog records to the producer, and Faust flushes the producer
before it commits source offsets.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from rocksdict import WriteBatch, WriteOptions

from streams.worker.faust_private import aiokafka_producer, partition_db, persisted_offset_key

log = logging.getLogger("slatestream.worker")
Tombstone = None
"""A pending changelog value that deletes its key."""


class PartitionTables(Protocol):
    """Where the worker's state of each partition lives (see WorkerCore)."""

    def for_partition(self, partition: int) -> MutableMapping[bytes, bytes]:
        """The bytes -> bytes mapping holding the state of one source partition."""
        ...


class PartitionTable(MutableMapping[bytes, bytes]):
    """One partition's RocksDB (a rocksdict `Rdict` opened raw by Faust), written back at each
    flush: a write or delete is only recorded (`pending`: key -> value, None for a delete;
    reads see it at once), and `take_pending` writes what was recorded to the RocksDB in one
    write batch, once per key, before its changelog records are sent. A user written by five
    batches between two flushes costs one RocksDB write, and until a clean stop
    (`flush_to_disk`) the RocksDB holds no write whose changelog record was not handed over."""

    def __init__(self, db: Any, hidden_keys: frozenset[bytes]) -> None:
        self.db = db
        self.hidden_keys = hidden_keys
        self.pending: dict[bytes, bytes | None] = {}
        db.set_write_options(_without_wal())  # the handle's default: every write through it, offsets included

    def _record(self, key: bytes, value: bytes | None) -> None:
        self.pending.pop(key, None)  # re-insert: the changelog keeps the order of last writes
        self.pending[key] = value

    def __getitem__(self, key: bytes) -> bytes:
        value: bytes | None = self.get(key)  # get's default, None, is the only non-bytes it returns
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: bytes, default: Any = None) -> Any:
        value = self.pending.get(key, _NOT_PENDING)
        if value is _NOT_PENDING:
            value = self.db.get(key)
        return default if value is None else bytes(value)

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._record(key, value)

    def __delitem__(self, key: bytes) -> None:
        if self.get(key) is None:
            raise KeyError(key)
        self._record(key, Tombstone)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, bytes) and key not in self.hidden_keys and self.get(key) is not None

    def __iter__(self) -> Iterator[bytes]:
        """The keys in RocksDB's (bytewise) order, pending writes and deletes included."""
        written = {key for key, value in self.pending.items() if value is not None}
        keys = {bytes(key) for key in self.db.keys()} - self.pending.keys() | written
        return iter(sorted(keys - self.hidden_keys))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def take_pending(self) -> dict[bytes, bytes | None]:
        """The changelog records written since the last call, emptied, after writing them to the
        RocksDB (one write batch, without the write-ahead log)."""
        pending, self.pending = self.pending, {}
        self._write(pending)
        return pending

    def flush_to_disk(self) -> None:
        """A clean stop's last writes: the pending writes to the RocksDB too (they stay pending
        for the changelog: if the stop never sends them, their source records were not acked,
        and the restart's replay resends the values the local store holds) and the memtable to
        its files (the writes skip the write-ahead log)."""
        self._write(self.pending)
        self.db.flush(True)

    def _write(self, records: dict[bytes, bytes | None]) -> None:
        """Write records (None: a delete) to the RocksDB in one write batch, without the WAL."""
        if not records:
            return
        batch = WriteBatch(raw_mode=True)
        for key, value in records.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        self.db.write(batch)  # the handle's options: without the WAL


class _Pending(enum.Enum):
    """The type of `_NOT_PENDING` (an enum member, so that `is _NOT_PENDING` narrows for mypy)."""

    NOT = enum.auto()


_NOT_PENDING: Final = _Pending.NOT
"""What `PartitionTable.pending.get` returns for a key with no pending write."""


class ChangelogSendError(RuntimeError):
    """Changelog records could not be handed to the producer: their writes are lost, so no
    record may be acked after it (the worker stops; a restart replays from the committed offsets)."""


ChangelogRecords = list[tuple[bytes, bytes | None]]
"""(key, value) pairs for one changelog partition, in order; value None deletes the key."""

SendMany = Callable[[str, int, ChangelogRecords], Awaitable["asyncio.Future[int]"]]
"""async (topic, partition, records) -> a future of the offset the last record gets in Kafka."""


class StateTables:
    """The state table of a Faust app, one `PartitionTable` per active partition.

    Args:
        table: the Faust table (rocksdb:// store) whose RocksDBs and changelog topic are used.
        send_many: how a partition's changelog records are produced (see `producer_send_many`).
    """

    def __init__(self, table: Any, send_many: SendMany) -> None:
        self.table = table
        self.send_many = send_many
        self._partitions: dict[int, PartitionTable] = {}
        self._last_turn: asyncio.Future[None] | None = None  # the latest take's turn (PendingTake)
        self.records_sent = 0
        self.flushes = 0
        self.flush_s = 0.0  # time in flush, waiting for an earlier flush included
        self.failed: BaseException | None = None  # the first send error; every later flush raises

    @property
    def _offset_key(self) -> bytes:
        """The key under which Faust keeps a partition's persisted changelog offset."""
        return persisted_offset_key(self.table)

    @property
    def changelog_topic(self) -> str:
        return str(self.table.changelog_topic.get_topic_name())

    def for_partition(self, partition: int) -> PartitionTable:
        part = self._partitions.get(partition)
        if part is None:
            part = self._partitions[partition] = PartitionTable(partition_db(self.table, partition),
                                                                frozenset({self._offset_key}))
        return part

    def flush_to_disk(self) -> int:
        """Write every open partition's pending writes and memtable to its files
        (`PartitionTable.flush_to_disk`: the writes skip the write-ahead log, so a clean stop
        must flush them or the next start replays the whole changelog); returns how many
        partitions were flushed."""
        flushed = 0
        for part in self._partitions.values():
            try:
                part.flush_to_disk()
            except Exception as error:  # a partition Faust closed already
                log.info("state: a partition not flushed at shutdown: %s", error)
                continue
            flushed += 1
        return flushed

    def open_partitions(self) -> list[PartitionTable]:
        """The partition tables opened so far (since the last rebalance)."""
        return list(self._partitions.values())

    def pending_keys(self) -> int:
        """Keys written since the last flush, over every open partition."""
        return sum(len(part.pending) for part in self._partitions.values())

    def partitions_changed(self) -> None:
        """Forget the open partitions (after a rebalance Faust may have reopened or dropped them).

        Call `flush` first: pending records of a revoked partition would be lost otherwise.
        """
        self._partitions.clear()

    async def flush(self, acknowledged: bool = False) -> int:
        """Hand every pending changelog record to the producer; returns how many. With
        `acknowledged`, return only once Kafka acknowledged them (ChangelogSendError if it did
        not). Raises ChangelogSendError if any partition's records could not be handed over, and
        on every call after that.

        The pending records of all partitions are taken before the first await, so writes made
        meanwhile (by another agent) go to the next flush, which waits for this one's records
        to be handed over first (so a key's changelog records keep the order of its writes).
        When Kafka acknowledges a partition's last record, its offset becomes the persisted
        offset of that partition's RocksDB.
        """
        return await self._hand_over(self._take_pending(), acknowledged, time.perf_counter())

    def start_flush(self, acknowledged: bool = False) -> asyncio.Task[int]:
        """`flush` begun now: every partition's pending records are taken before this returns
        (writes made after it go to a later flush); handing them over and, with `acknowledged`,
        Kafka's acknowledgement happen in the task returned. The request path starts a group's
        flush so and ranks the next group while Kafka acknowledges this one."""
        take = self._take_pending()
        task = asyncio.ensure_future(self._hand_over(take, acknowledged, time.perf_counter()))
        task.add_done_callback(lambda _: take.end_turn())  # also when cancelled before its first step
        return task

    def _take_pending(self) -> PendingTake:
        """Every open partition's pending records, taken now, with their turn to be handed over
        (after those of every earlier take: a key's records reach Kafka in write order)."""
        take = PendingTake([(partition, part.db, part.take_pending()) for partition, part in self._partitions.items()],
                           after=self._last_turn, turn=asyncio.get_running_loop().create_future())
        self._last_turn = take.turn
        return take

    async def _hand_over(self, take: PendingTake, acknowledged: bool, started: float) -> int:
        """`flush`'s work once the records are taken (`started`: perf_counter seconds then)."""
        try:
            delivered, sent = await self._send_in_turn(take)
        finally:
            take.end_turn()
        if acknowledged and delivered:
            try:
                await asyncio.gather(*delivered)
            except Exception as error:
                self.failed = self.failed or error
                raise ChangelogSendError("a changelog flush was not acknowledged") from error
        self.records_sent += sent
        if sent:
            self.flushes += 1
            self.flush_s += time.perf_counter() - started
        return sent

    async def _send_in_turn(self, take: PendingTake) -> tuple[list[asyncio.Future[int]], int]:
        """Once every earlier take is handed over, hand this one's records to the producer: the
        futures of each partition's last offset, and how many records."""
        if take.after is not None:
            await asyncio.shield(take.after)  # a cancelled flush leaves the earlier one running
        if self.failed is not None:
            raise ChangelogSendError("an earlier changelog flush failed") from self.failed
        # partitions concurrently: the producer then puts a batch of each in one request
        # (one partition at a time moved one ~1 MB batch per broker round trip)
        topic = self.changelog_topic
        taken = [(partition, db, pending) for partition, db, pending in take.records if pending]
        lasts = await asyncio.gather(*(self.send_many(topic, partition, list(pending.items()))
                                       for partition, _, pending in taken), return_exceptions=True)
        delivered: list[asyncio.Future[int]] = []
        sent = 0
        for (_, db, pending), last in zip(taken, lasts, strict=True):
            if isinstance(last, BaseException):
                self.failed = self.failed or last
                continue
            last.add_done_callback(_persist_offset_callback(db, self._offset_key))
            last.add_done_callback(self._note_undelivered)
            delivered.append(last)
            sent += len(pending)
        if self.failed is not None:  # writes were lost: no flush may succeed (and lead to acks) after this
            raise ChangelogSendError("a changelog flush failed") from self.failed
        return delivered, sent

    def _note_undelivered(self, last: asyncio.Future[int]) -> None:
        """A partition's records that Kafka did not acknowledge fail every later flush, whether
        or not the flush that handed them over waited for the acknowledgement (the group commit's
        does not: without this its failure went unseen and later flushes led to acks)."""
        if not last.cancelled() and last.exception() is not None:
            self.failed = self.failed or last.exception()


@dataclass
class PendingTake:
    """One flush's records, taken from the partitions: (partition, its RocksDB, its pending
    records); handed over once `after` (the previous take's turn, None for the first) is done;
    `turn` is done once they are handed over, or the hand-over failed or was cancelled (the
    next take goes on either way)."""

    records: list[tuple[int, Any, dict[bytes, bytes | None]]]
    after: asyncio.Future[None] | None
    turn: asyncio.Future[None]

    def end_turn(self) -> None:
        """Let the next take be handed over (idempotent)."""
        if not self.turn.done():
            self.turn.set_result(None)


def _without_wal() -> WriteOptions:
    """RocksDB write options that skip the write-ahead log (see the module docstring)."""
    options = WriteOptions()
    # rocksdict's stub declares disable_wal a method; at runtime it is a settable bool property
    options.disable_wal = True  # type: ignore[method-assign, assignment]
    return options


def _persist_offset_callback(db: Any, key: bytes) -> Callable[[asyncio.Future[int]], None]:
    """Store the last sent record's offset as Faust's persisted changelog offset in `db`."""

    def persist(future: asyncio.Future[int]) -> None:
        if future.cancelled() or future.exception() is not None:
            return  # not persisted: recovery re-reads from the previous persisted offset
        db.put(key, str(future.result()).encode())

    return persist


def producer_send_many(producer_of: Callable[[], Any]) -> SendMany:
    """`SendMany` through an aiokafka producer's record batches (`create_batch`/`send_batch`):
    a few microseconds per record instead of a `send` call each. `producer_of()` returns the
    started AIOKafkaProducer (for a Faust app: `app.producer._ensure_producer`)."""

    async def send_many(topic: str, partition: int, records: ChangelogRecords) -> asyncio.Future[int]:
        producer = producer_of()
        batch, count = producer.create_batch(), 0
        last: asyncio.Future[Any] | None = None
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None) is None:
                if count == 0:
                    raise ValueError(f"changelog record {key!r} ({len(value or b'')} bytes) does not fit in "
                                     "one producer batch: raise producer_max_batch_bytes")
                await producer.send_batch(batch, topic, partition=partition)
                batch, count = producer.create_batch(), 0
                if batch.append(key=key, value=value, timestamp=None) is None:
                    raise ValueError(f"changelog record {key!r} ({len(value or b'')} bytes) does not fit in "
                                     "one producer batch: raise producer_max_batch_bytes")
            count += 1
        last = await producer.send_batch(batch, topic, partition=partition)
        return _last_offset(last, count)

    return send_many


def _last_offset(batch_sent: asyncio.Future[Any], count: int) -> asyncio.Future[int]:
    """A future of the offset of the last of `count` records of a batch (base offset + count - 1)."""
    out: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def done(future: asyncio.Future[Any]) -> None:
        if out.done():
            return
        if future.cancelled():
            out.cancel()
        elif future.exception() is not None:
            out.set_exception(future.exception())  # type: ignore[arg-type]
        else:
            out.set_result(int(future.result().offset) + count - 1)

    batch_sent.add_done_callback(done)
    return out


def faust_send_many(app: Any) -> SendMany:
    """`SendMany` through a Faust app's (non-transactional) aiokafka producer."""
    return producer_send_many(lambda: aiokafka_producer(app))
