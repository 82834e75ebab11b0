"""The worker's state partitions: direct RocksDB writes, changelog sent once per key and flush."""

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from rocksdict import Options, Rdict

from streams.worker.partition_state import ChangelogSendError, PartitionTable, StateTables, producer_send_many
from streams.worker.table_store import TableStore, unwrap

OFFSET_KEY = b"__faust\x00offset__"


class FakeFaustStore:
    """What StateTables uses of Faust's rocksdb Store: one raw Rdict per partition."""

    offset_key = OFFSET_KEY

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dbs: dict[int, Rdict] = {}

    def _db_for_partition(self, partition: int) -> Rdict:
        if partition not in self.dbs:
            options = Options(raw_mode=True)
            options.create_if_missing(True)
            self.dbs[partition] = Rdict(str(self.root / f"p{partition}"), options=options)
        return self.dbs[partition]


class RecordingSend:
    """A producer that records (topic, key, value, partition) and assigns offsets per partition."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None, int]] = []

    async def __call__(self, topic: str, partition: int, records: list[tuple[bytes, bytes | None]]) -> Any:
        for key, value in records:
            self.sent.append((topic, key, value, partition))
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        future.set_result(sum(1 for s in self.sent if s[3] == partition) - 1)
        return future


def tables(tmp_path: Path) -> tuple[StateTables, FakeFaustStore, RecordingSend]:
    store = FakeFaustStore(tmp_path)
    table = SimpleNamespace(data=store, changelog_topic=SimpleNamespace(get_topic_name=lambda: "app-state-changelog"))
    send = RecordingSend()
    return StateTables(table, send), store, send


async def _flush_and_settle(state: StateTables) -> int:
    sent = await state.flush()
    await asyncio.sleep(0)  # let done callbacks run
    return sent


def test_writes_go_to_the_partitions_db_and_each_key_is_sent_once_in_last_write_order(tmp_path: Path) -> None:
    state, store, send = tables(tmp_path)
    p0, p1 = state.for_partition(0), state.for_partition(1)
    p0[b"user/a"] = b"1"
    p0[b"global/0"] = b"g1"
    p0[b"user/a"] = b"2"
    p1[b"user/b"] = b"3"
    del p0[b"user/a"]
    p0[b"global/0"] = b"g2"
    # reads see every write at once; the RocksDBs get them at the flush
    assert p0.get(b"user/a") is None and b"global/0" in p0 and list(p0) == [b"global/0"]
    assert p0[b"global/0"] == b"g2" and p1[b"user/b"] == b"3"
    assert store.dbs[0].get(b"global/0") is None and store.dbs[1].get(b"user/b") is None

    assert asyncio.run(_flush_and_settle(state)) == 3
    assert store.dbs[0].get(b"user/a") is None and store.dbs[0].get(b"global/0") == b"g2"
    assert store.dbs[1].get(b"user/b") == b"3"
    assert send.sent == [("app-state-changelog", b"user/a", None, 0), ("app-state-changelog", b"global/0", b"g2", 0),
                         ("app-state-changelog", b"user/b", b"3", 1)]
    # the last record's offset per partition is Faust's persisted offset; the key stays hidden
    assert store.dbs[0].get(OFFSET_KEY) == b"1" and store.dbs[1].get(OFFSET_KEY) == b"0"
    assert OFFSET_KEY not in p0 and list(p0) == [b"global/0"] and len(p0) == 1
    assert asyncio.run(_flush_and_settle(state)) == 0  # nothing pending any more


def test_deleting_a_missing_key_raises_and_sends_nothing(tmp_path: Path) -> None:
    state, _, send = tables(tmp_path)
    with pytest.raises(KeyError):
        del state.for_partition(0)[b"nobody"]
    assert asyncio.run(_flush_and_settle(state)) == 0 and send.sent == []


def test_a_failed_send_does_not_move_the_persisted_offset(tmp_path: Path) -> None:
    state, store, _ = tables(tmp_path)

    async def failing(topic: str, partition: int, records: list[tuple[bytes, bytes | None]]) -> asyncio.Future[int]:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        future.set_exception(RuntimeError("broker gone"))
        return future

    state.send_many = failing
    state.for_partition(0)[b"k"] = b"v"
    asyncio.run(_flush_and_settle(state))
    assert store.dbs[0].get(OFFSET_KEY) is None


def test_table_store_over_a_partition_keeps_offsets_and_bounds_what_it_remembers(tmp_path: Path) -> None:
    state, _, send = tables(tmp_path)
    store = TableStore(state.for_partition(0), max_remembered=2)
    store.stage_offsets("u1", {0: 5, 1: 7})
    store.put("u1", b"state-1")
    for key in ("u2", "u3", "u4"):  # pushes u1's remembered offsets out
        store.put(key, b"x")
    assert "u1" not in store._known and len(store._known) == 2
    store.stage_offsets("u1", {0: 9})
    store.put("u1", b"state-2")  # must merge with the stored {1: 7}, not forget it
    assert unwrap(state.for_partition(0)[b"u1"]) == ({0: 9, 1: 7}, b"state-2")
    assert store.offsets_of("u1") == {0: 9, 1: 7}
    asyncio.run(_flush_and_settle(state))
    assert [(key, unwrap(value)[0] if value else None) for _, key, value, _ in send.sent][-1] == (b"u1", {0: 9, 1: 7})


def test_a_partition_table_is_a_mutable_mapping(tmp_path: Path) -> None:
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    table = PartitionTable(Rdict(str(tmp_path / "db"), options=options), frozenset())
    table[b"a"] = b"1"
    assert table[b"a"] == b"1" and dict(table.items()) == {b"a": b"1"}
    with pytest.raises(KeyError):
        table[b"b"]
    assert table.take_pending() == {b"a": b"1"} and table.take_pending() == {}


def test_pending_writes_and_deletes_read_first_and_reach_the_db_once_per_key_at_take(tmp_path: Path) -> None:
    """Between two takes a key's last write (or delete) is what reads, membership, iteration
    and length see; `take_pending` writes each key once to the RocksDB (deletes included) and
    hands the records over in last-write order."""
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    db = Rdict(str(tmp_path / "db"), options=options)
    db[b"old"], db[b"kept"] = b"0", b"k"
    table = PartitionTable(db, frozenset({b"hidden"}))
    db[b"hidden"] = b"offset"
    for value in (b"1", b"2", b"3"):
        table[b"new"] = value
    del table[b"old"]
    table[b"old"] = b"again"
    del table[b"old"]
    assert table.get(b"new") == b"3" and b"old" not in table and table.get(b"old", b"none") == b"none"
    assert list(table) == [b"kept", b"new"] and len(table) == 2 and b"hidden" not in table
    with pytest.raises(KeyError):
        del table[b"old"]
    assert db.get(b"new") is None and db.get(b"old") == b"0"  # nothing written yet
    assert table.take_pending() == {b"new": b"3", b"old": None}
    assert db.get(b"new") == b"3" and db.get(b"old") is None and db.get(b"kept") == b"k"
    assert list(table) == [b"kept", b"new"] and table.take_pending() == {}


class FakeBatch:
    """An aiokafka BatchBuilder holding at most `capacity` records."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.records: list[tuple[bytes, bytes | None]] = []

    def append(self, *, key: bytes, value: bytes | None, timestamp: None) -> object | None:
        if len(self.records) == self.capacity or (value is not None and len(value) > 100):
            return None
        self.records.append((key, value))
        return object()


class FakeProducer:
    """create_batch/send_batch of an AIOKafkaProducer; the broker gives consecutive offsets."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.next_offset = 10
        self.sent: list[tuple[str, int, list[tuple[bytes, bytes | None]]]] = []

    def create_batch(self) -> FakeBatch:
        return FakeBatch(self.capacity)

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> asyncio.Future[Any]:
        self.sent.append((topic, partition, batch.records))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(SimpleNamespace(offset=self.next_offset))
        self.next_offset += len(batch.records)
        return future


def test_producer_batches_split_where_full_and_report_the_last_records_offset() -> None:
    producer = FakeProducer(capacity=2)
    send_many = producer_send_many(lambda: producer)

    async def scenario() -> int:
        last = await send_many("cl", 3, [(b"a", b"1"), (b"b", None), (b"c", b"3"), (b"d", b"4"), (b"e", b"5")])
        return await last

    assert asyncio.run(scenario()) == 14  # offsets 10..14
    assert [(t, p, [k for k, _ in r]) for t, p, r in producer.sent] == [
        ("cl", 3, [b"a", b"b"]), ("cl", 3, [b"c", b"d"]), ("cl", 3, [b"e"])]


def test_a_record_larger_than_a_batch_is_refused_with_the_setting_to_raise() -> None:
    send_many = producer_send_many(lambda: FakeProducer(capacity=5))
    with pytest.raises(ValueError, match="producer_max_batch_bytes"):
        asyncio.run(send_many("cl", 0, [(b"big", b"x" * 101)]))


def test_concurrent_flushes_hand_over_a_keys_records_in_write_order(tmp_path: Path) -> None:
    """A second flush (another agent) waits until the first one's records are handed over."""
    state, _, send = tables(tmp_path)
    slow_started = asyncio.Event()

    async def scenario() -> None:
        original = send.__call__

        async def slow_send(topic: str, partition: int, records: list[tuple[bytes, bytes | None]]) -> Any:
            if not slow_started.is_set():  # the first hand-over waits for the producer a moment
                slow_started.set()
                await asyncio.sleep(0.02)
            return await original(topic, partition, records)

        state.send_many = slow_send
        state.for_partition(0)[b"k"] = b"old"
        first = asyncio.create_task(state.flush())
        await slow_started.wait()
        state.for_partition(0)[b"k"] = b"new"
        await asyncio.gather(first, state.flush())

    asyncio.run(scenario())
    assert [value for _, key, value, _ in send.sent if key == b"k"] == [b"old", b"new"]


def test_partition_writes_skip_the_write_ahead_log_and_survive_a_clean_close(tmp_path: Path) -> None:
    """The changelog is what state is recovered from: the partition's RocksDB is written
    without its WAL (a SIGKILL loses the memtable: tests/integration/test_worker_guarantee.py),
    and a clean close still flushes it."""
    state, store, _ = tables(tmp_path)
    part = state.for_partition(0)
    wal_before = sum(f.stat().st_size for f in (tmp_path / "p0").glob("*.log"))
    for n in range(50):
        part[f"k{n}".encode()] = b"x" * 4_800
    asyncio.run(_flush_and_settle(state))  # the flush writes them to the RocksDB
    assert sum(f.stat().st_size for f in (tmp_path / "p0").glob("*.log")) == wal_before
    store.dbs.pop(0).close()
    reopened = store._db_for_partition(0)
    assert bytes(reopened[b"k49"]) == b"x" * 4_800
    assert sum(1 for key in reopened.keys() if key != OFFSET_KEY) == 50 and reopened.get(OFFSET_KEY) == b"49"


def test_pending_keys_counts_each_key_written_since_the_last_flush_once(tmp_path: Path) -> None:
    state, _, _ = tables(tmp_path)
    p0, p1 = state.for_partition(0), state.for_partition(1)
    for value in (b"1", b"2", b"3"):
        p0[b"user/a"] = value
    p1[b"user/b"] = b"1"
    assert state.pending_keys() == 2
    assert asyncio.run(_flush_and_settle(state)) == 2 and state.pending_keys() == 0
    assert state.flushes == 1 and state.flush_s > 0


def test_a_partition_that_cannot_be_handed_over_fails_this_and_every_later_flush(tmp_path: Path) -> None:
    """Its writes are lost, so no later flush may succeed (the caller would ack records after it);
    the other partitions' records are still handed over in full."""
    state, store, send = tables(tmp_path)

    async def refusing_partition_1(topic: str, partition: int, records: list[tuple[bytes, bytes | None]]) -> Any:
        if partition == 1:
            raise ValueError("record does not fit in one producer batch")
        return await send(topic, partition, records)

    state.send_many = refusing_partition_1
    state.for_partition(0)[b"a"] = b"1"
    state.for_partition(1)[b"b"] = b"2"
    with pytest.raises(ChangelogSendError) as failed:
        asyncio.run(_flush_and_settle(state))
    assert isinstance(failed.value.__cause__, ValueError)
    assert [key for _, key, _, _ in send.sent] == [b"a"] and store.dbs[0].get(OFFSET_KEY) == b"0"
    state.for_partition(0)[b"c"] = b"3"
    with pytest.raises(ChangelogSendError):
        asyncio.run(_flush_and_settle(state))
    assert [key for _, key, _, _ in send.sent] == [b"a"]


def test_a_clean_stop_writes_the_pending_writes_to_disk_and_keeps_them_for_the_changelog(tmp_path: Path) -> None:
    """`flush_to_disk` (the worker's shutdown): what is pending reaches the RocksDB's files, so
    a snapshot of the stopped worker's directory holds it, and a later flush still sends it."""
    state, store, send = tables(tmp_path)
    part = state.for_partition(0)
    part[b"user/a"] = b"1"
    del part[b"user/a"]
    part[b"global/0"] = b"g"
    assert state.flush_to_disk() == 1
    store.dbs.pop(0).close()
    reopened = store._db_for_partition(0)
    assert reopened.get(b"global/0") == b"g" and reopened.get(b"user/a") is None
    part.db = reopened
    assert asyncio.run(_flush_and_settle(state)) == 2
    assert [(key, value) for _, key, value, _ in send.sent] == [(b"user/a", None), (b"global/0", b"g")]


def test_a_flush_started_first_hands_over_first_even_when_a_later_one_runs_before_it(tmp_path: Path) -> None:
    """`start_flush` takes its records when called and hands them over in a task; a plain flush
    called after it, which runs before that task does, waits for the task's turn."""
    state, _, send = tables(tmp_path)

    async def scenario() -> tuple[int, int]:
        state.for_partition(0)[b"k"] = b"old"
        started = state.start_flush(acknowledged=True)
        state.for_partition(0)[b"k"] = b"new"
        later = await state.flush()
        return await started, later

    assert asyncio.run(scenario()) == (1, 1)
    assert [value for _, key, value, _ in send.sent if key == b"k"] == [b"old", b"new"]


def test_a_started_flush_cancelled_before_it_ran_does_not_hold_up_later_flushes(tmp_path: Path) -> None:
    """(A request lane cancelled at shutdown can cancel a group's flush before its first step.)"""
    state, _, send = tables(tmp_path)

    async def scenario() -> int:
        state.for_partition(0)[b"a"] = b"1"
        state.start_flush(acknowledged=True).cancel()
        state.for_partition(0)[b"b"] = b"2"
        return await asyncio.wait_for(state.flush(), timeout=5)

    assert asyncio.run(scenario()) == 1
    assert [key for _, key, _, _ in send.sent] == [b"b"]  # the cancelled take's records are not sent


def test_records_kafka_did_not_acknowledge_fail_every_later_flush_even_unawaited(tmp_path: Path) -> None:
    """The group commit's flush hands records over without waiting for Kafka; when their
    delivery fails later, the next flush raises instead of leading to more acks."""
    state, _, _ = tables(tmp_path)

    async def scenario() -> None:
        deliveries: list[asyncio.Future[int]] = []

        async def unacknowledged(topic: str, partition: int, records: list[tuple[bytes, bytes | None]]) -> Any:
            deliveries.append(asyncio.get_running_loop().create_future())
            return deliveries[-1]

        state.send_many = unacknowledged
        state.for_partition(0)[b"a"] = b"1"
        assert await state.flush() == 1  # handed over, not waited for
        deliveries[0].set_exception(ConnectionError("the broker never acknowledged"))
        await asyncio.sleep(0)  # the delivery's callbacks run
        state.for_partition(0)[b"b"] = b"2"
        with pytest.raises(ChangelogSendError) as failed:
            await state.flush()
        assert isinstance(failed.value.__cause__, ConnectionError)

    asyncio.run(scenario())
