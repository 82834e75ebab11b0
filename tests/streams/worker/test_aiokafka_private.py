"""aiokafka's private names the worker uses (one checked version), and the lean unpacking of the
lane topics' fetches into the core's records, record for record what aiokafka's own path gives."""

import asyncio
import struct
from collections import OrderedDict
from types import SimpleNamespace

import aiokafka
import pytest
from aiokafka import AIOKafkaConsumer, errors
from aiokafka.consumer.fetcher import READ_COMMITTED, READ_UNCOMMITTED, Fetcher, FetchResult, PartitionRecords
from aiokafka.consumer.subscription_state import SubscriptionState
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition

from streams.worker.aiokafka_private import (
    AIOKAFKA_VERSION,
    LANE_FETCH_MAX_WAIT_MS,
    AiokafkaVersionError,
    LeanResults,
    check_aiokafka_version,
    lean_fetches,
    unpack_records,
)
from streams.worker.paths import as_records, to_record
from streams.worker.records import Record

TP = TopicPartition("t.impressions", 3)
ABORT_MARKER_KEY = struct.pack(">hh", 0, 0)  # a control record's key: version 0, type 0 (abort)


def test_the_private_names_are_those_of_the_one_checked_aiokafka_version() -> None:
    assert aiokafka.__version__ == AIOKAFKA_VERSION
    check_aiokafka_version()
    with pytest.raises(AiokafkaVersionError, match=r"install aiokafka==0\.14\.0"):
        check_aiokafka_version("0.15.0")
    for name in ("getall", "check_assignment", "has_more", "_update_position"):
        assert hasattr(FetchResult, name), name
    for name in ("_unpack_records", "_consume_aborted_up_to", "_contains_abort_marker", "_consumer_record"):
        assert hasattr(PartitionRecords, name), name
    records = PartitionRecords(TP, MemoryRecords(batch(0, [b"v"])), None, 0, None, None, True, READ_UNCOMMITTED)
    for name in ("_tp", "_records", "_check_crcs", "_isolation_level", "_aborted_producers", "next_fetch_offset"):
        assert hasattr(records, name), name


def test_the_worker_app_refuses_another_aiokafka(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from streams.settings import StreamSettings
    from streams.worker.app import make_app

    monkeypatch.setattr(aiokafka, "__version__", "0.13.0")
    with pytest.raises(AiokafkaVersionError, match=r"0\.13\.0 is installed"):
        make_app(StreamSettings(broker_url="kafka://127.0.0.1:1", store_dir=tmp_path))


def batch(base: int, values: list[bytes | None], producer_id: int = -1, transactional: bool = False,
          control_key: bytes | None = None) -> bytes:
    """One record batch (format v2) at offset `base`: a record per value, keyed u<i>, or control
    records with `control_key` (a control batch: its attribute bit set by hand, so its CRC no
    longer holds)."""
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=int(transactional),
                                        producer_id=producer_id, producer_epoch=0 if producer_id >= 0 else -1,
                                        base_sequence=0 if producer_id >= 0 else -1, batch_size=1 << 20)
    for index, value in enumerate(values):
        builder.append(index, timestamp=1_700_000_000_000, key=control_key or f"u{index}".encode(), value=value,
                       headers=[])
    raw = bytearray(builder.build())
    raw[:8] = base.to_bytes(8, "big", signed=True)
    if control_key is not None:
        raw[22] |= 0x20  # the attributes' low byte: the control bit
    return bytes(raw)


FETCHED = b"".join([
    batch(0, [b"a0", b"a1", b"a2", b"a3", b"a4"]),
    batch(5, [b"t5", b"t6", b"t7"], producer_id=7, transactional=True),  # aborted below
    batch(8, [b""], producer_id=7, transactional=True, control_key=ABORT_MARKER_KEY),
    batch(9, [b"d9", None, b"d11"]),  # a tombstone at 10
])
ABORTED = [(7, 5)]  # (producer id, first offset) as a fetch response lists it


def aiokafkas_own(isolation: int, fetch_offset: int) -> tuple[list[Record], int]:
    """aiokafka's records (ConsumerRecords, per record) as the core's, and its next fetch offset."""
    records = PartitionRecords(TP, MemoryRecords(FETCHED), ABORTED, fetch_offset, None, None, False, isolation)
    return [to_record("impressions", record) for record in records], records.next_fetch_offset


@pytest.mark.parametrize("isolation", [READ_UNCOMMITTED, READ_COMMITTED])
@pytest.mark.parametrize("fetch_offset", [0, 2])
def test_unpacking_gives_aiokafkas_records_and_next_offset(isolation: int, fetch_offset: int) -> None:
    records = PartitionRecords(TP, MemoryRecords(FETCHED), ABORTED, fetch_offset, None, None, False, isolation)
    lean = unpack_records(records, "impressions")
    expected, next_offset = aiokafkas_own(isolation, fetch_offset)
    assert lean == expected and all(type(record) is Record for record in lean)
    assert records.next_fetch_offset == next_offset == 12
    values = [record.value for record in lean]
    assert values[:2] == ([b"a0", b"a1"] if fetch_offset == 0 else [b"a2", b"a3"])
    assert (b"t5" in values) == (isolation == READ_UNCOMMITTED)  # an aborted transaction, read committed
    assert values[-3:] == [b"d9", b"", b"d11"] and lean[-2].offset == 10  # the tombstone kept, value b""


def test_a_corrupt_batch_raises_as_aiokafka_does() -> None:
    raw = bytearray(batch(0, [b"a0", b"a1"]))
    raw[-1] ^= 0xFF  # the last value's last byte
    for unpack in (lambda records: list(records), lambda records: unpack_records(records, "impressions")):
        records = PartitionRecords(TP, MemoryRecords(bytes(raw)), None, 0, None, None, True, READ_UNCOMMITTED)
        with pytest.raises(errors.CorruptRecordException, match="Invalid CRC"):
            unpack(records)


def fetch_result(assignment: object, fetch_offset: int = 0) -> FetchResult:
    records = PartitionRecords(TP, MemoryRecords(FETCHED), ABORTED, fetch_offset, None, None, False, READ_COMMITTED)
    return FetchResult(TP, assignment=assignment, partition_records=records, backoff=0.1)


def test_a_lane_topics_result_stored_in_lean_results_hands_out_records_and_moves_the_position() -> None:
    async def scenario() -> None:
        subscription = SubscriptionState()
        other = TopicPartition("t.requests", 3)
        subscription.assign_from_user({TP, other})
        assignment = subscription.subscription.assignment
        assignment.state_value(TP).seek(0)
        results = LeanResults({"t.impressions": "impressions"}, OrderedDict([(TP, fetch_result(assignment))]))
        lean = results[TP].getall()
        assert lean == aiokafkas_own(READ_COMMITTED, 0)[0] and type(lean[0]) is Record
        assert assignment.state_value(TP).position == 12 and not results[TP].has_more()

        assignment.state_value(other).seek(0)
        untouched = FetchResult(other, assignment=assignment, partition_records=PartitionRecords(
            other, MemoryRecords(FETCHED), None, 0, None, None, False, READ_UNCOMMITTED), backoff=0.1)
        results[other] = untouched
        assert type(untouched.getall()[0]) is not Record  # another topic's records stay aiokafka's

        assignment.state_value(TP).seek(0)
        limited = results[TP] = fetch_result(assignment)
        assert [record.offset for record in limited.getall(max_records=2)] == [0, 1]  # aiokafka's own, per record
        assert assignment.state_value(TP).position == 2

        assignment.state_value(TP).seek(5)  # moved since the fetch: aiokafka returns nothing, as here
        assert fetch_result(assignment, fetch_offset=0).getall() == []
        stale = results[TP] = fetch_result(assignment, fetch_offset=0)
        assert stale.getall() == []

    asyncio.run(scenario())


def test_lean_fetches_shortens_the_brokers_wait_for_a_fetch() -> None:
    """Faust asks for 1,500 ms; aiokafka keeps one fetch in flight per broker, so a partition
    the feedback lane resumed waited for it (LANE_FETCH_MAX_WAIT_MS). A shorter wait stays."""
    for asked, kept in ((1500, LANE_FETCH_MAX_WAIT_MS), (20, 20)):
        consumer = SimpleNamespace(_fetcher=SimpleNamespace(_records=OrderedDict(), _fetch_max_wait_ms=asked))
        assert asyncio.run(lean_fetches(consumer, {"t.impressions": "impressions"})) is True
        assert consumer._fetcher._fetch_max_wait_ms == kept and isinstance(consumer._fetcher._records, LeanResults)

    async def fetcher_wait_ms() -> int:  # the attribute aiokafka's fetcher builds its requests from
        client = SimpleNamespace(_loop=asyncio.get_running_loop(), _metadata_max_age_ms=300_000)
        fetcher = Fetcher(client, SubscriptionState(), fetch_max_wait_ms=1500)
        fetcher._fetch_task.cancel()
        return int(fetcher._fetch_max_wait_ms)

    assert asyncio.run(fetcher_wait_ms()) == 1500 and LANE_FETCH_MAX_WAIT_MS == 100


def test_lean_fetches_waits_for_a_started_consumer() -> None:
    async def scenario() -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1")
        assert await lean_fetches(consumer, {"t.impressions": "impressions"}) is False  # no fetcher before start

    asyncio.run(scenario())


def test_as_records_keeps_the_cores_records_and_converts_the_rest() -> None:
    made = Record("clicks", "t.clicks", 0, 4, b"u", b"{}")
    consumer_record = PartitionRecords(TP, MemoryRecords(batch(0, [b"x"])), None, 0, None, None, True,
                                       READ_UNCOMMITTED).__next__()
    assert as_records({}, [made]) == [made]
    assert as_records({"t.impressions": "impressions"}, [made, consumer_record]) == [
        made, Record("impressions", "t.impressions", 3, 0, b"u0", b"x")]
