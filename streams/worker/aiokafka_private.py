"""Every private name of aiokafka the worker uses, in one module, checked against one version.

aiokafka turns each fetched record into a `ConsumerRecord` dataclass, in Python, one generator
step and one call a record (`PartitionRecords._unpack_records`): ~1.5 us a record, in Faust's
consumer thread and under the GIL, so the learning waits for it; the feedback path then made the
core's `Record` of each (~0.7 us more). For the feedback lane's topics, `lean_fetches` makes the
fetched records the core's `Record`s directly, one record batch at a time, with C-level maps
(`unpack_records`: ~0.5 us a record against ~1.5; bench/consumer_records.py measures both).

How: `lean_fetches` replaces the consumer's fetched results by partition (`Fetcher._records`,
an OrderedDict, never reassigned by aiokafka) with a `LeanResults`, which gives each
`FetchResult` of a lane topic stored in it its own `getall` (`lean_getall`). That keeps aiokafka's
checks as they are (`check_assignment`, `has_more`, `_update_position`) and mirrors
`_unpack_records` batch by batch: the CRC check, read_committed's aborted transactions
(`_consume_aborted_up_to`, `_contains_abort_marker`, `_aborted_producers`), control batches
skipped, records before the fetch offset left out, `next_fetch_offset` moved past each batch.
A call with `max_records` (Faust's `broker_max_poll_records`, unset by the worker) goes to
aiokafka's own `getall`, which yields per record. Other topics' results are left alone.
`lean_fetches` also shortens the broker's wait for the consumer's fetches (the fetcher's
`_fetch_max_wait_ms`, which Faust sets to 1,500 ms) to `LANE_FETCH_MAX_WAIT_MS`.

`check_aiokafka_version()` (called by `streams.worker.app.make_app` and by the install) refuses any
aiokafka other than `AIOKAFKA_VERSION` (tests/streams/worker/test_aiokafka_private.py fails on any other).
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Mapping
from functools import partial
from itertools import repeat
from operator import attrgetter
from typing import Any

import aiokafka
from aiokafka import errors
from aiokafka.consumer.fetcher import READ_COMMITTED, FetchResult

from streams.worker.pins import require_pinned
from streams.worker.records import Record

log = logging.getLogger(__name__)

AIOKAFKA_VERSION = "0.14.0"
"""The aiokafka version every name here was read from."""

_OFFSET, _KEY, _VALUE = attrgetter("offset"), attrgetter("key"), attrgetter("value")
_NEW_RECORD = partial(tuple.__new__, Record)
"""A `Record` from a tuple of its fields, with no Python frame (a NamedTuple's own __new__ is one)."""


LANE_FETCH_MAX_WAIT_MS = 100
"""The longest the broker holds a fetch of the worker's consumer open for records to come (Faust
asks for 1,500 ms). aiokafka keeps one fetch in flight per broker and leaves out of it the
partitions whose records still wait to be taken, so a partition the feedback lane paused (a
burst above its high water), taken and resumed, is fetched again only once that fetch returns:
with 1,500 ms a resumed partition of a quiet group waited up to 1.5 s (docs/worker.md, "A
resumed partition's fetch"). 100 ms: an idle worker asks the broker ten times a second."""


class AiokafkaVersionError(RuntimeError):
    """The installed aiokafka is not the version this module was checked against."""


def check_aiokafka_version(installed: str | None = None) -> None:
    """Raise AiokafkaVersionError unless aiokafka is exactly `AIOKAFKA_VERSION`."""
    require_pinned("aiokafka", aiokafka.__version__ if installed is None else installed, AIOKAFKA_VERSION,
                   "streams/worker/aiokafka_private.py", AiokafkaVersionError)


async def lean_fetches(consumer: Any, kinds: Mapping[str, str]) -> bool:
    """Make `consumer`'s (a started AIOKafkaConsumer; await in its own thread) fetched records of
    the topics in `kinds` ({topic: the core's record kind}) the core's `Record`s from now on, and
    its fetches held open by the broker at most `LANE_FETCH_MAX_WAIT_MS`. Results fetched before
    stay aiokafka's. False if it has no fetcher yet (not started)."""
    check_aiokafka_version()
    fetcher = consumer._fetcher
    if fetcher is None:
        return False
    if not isinstance(fetcher._records, LeanResults):
        fetcher._records = LeanResults(kinds, fetcher._records)
        log.info("records of %s fetched as the core's records", ", ".join(sorted(kinds)))
    fetcher._fetch_max_wait_ms = min(fetcher._fetch_max_wait_ms, LANE_FETCH_MAX_WAIT_MS)
    return True


class LeanResults(collections.OrderedDict[Any, Any]):
    """A fetcher's results by partition, where each `FetchResult` of a topic in `kinds` is
    given `lean_getall` as its `getall` when it is stored."""

    def __init__(self, kinds: Mapping[str, str], results: Mapping[Any, Any]) -> None:
        self.kinds = dict(kinds)  # before the results are stored (through __setitem__)
        super().__init__(results)

    def __setitem__(self, tp: Any, result: Any) -> None:
        kind = self.kinds.get(tp.topic)
        if kind is not None and type(result) is FetchResult:
            result.getall = partial(lean_getall, result, kind)
        super().__setitem__(tp, result)


def lean_getall(result: Any, kind: str, max_records: int | None = None) -> list[Any]:
    """aiokafka's `FetchResult.getall` with the records as the core's `Record`s of `kind` (a
    call with `max_records` is aiokafka's own, per record)."""
    if max_records is not None:
        return FetchResult.getall(result, max_records)  # type: ignore[no-any-return]
    if not result.check_assignment(result._topic_partition) or not result.has_more():
        return []
    records = unpack_records(result._partition_records, kind)
    result._update_position()
    result._partition_records = None
    return records


def unpack_records(partition_records: Any, kind: str) -> list[Record]:
    """Every record of a `PartitionRecords` as the core's `Record` of `kind`, in offset order
    (aiokafka's `_unpack_records`, a batch at a time). A tombstone's value is b""."""
    topic, partition = partition_records._tp.topic, partition_records._tp.partition
    batches = partition_records._records
    out: list[Record] = []
    while batches.has_next():
        batch = batches.next_batch()
        if partition_records._check_crcs and not batch.validate_crc():
            raise errors.CorruptRecordException(f"Invalid CRC - {partition_records._tp}")
        if _aborted(partition_records, batch) or batch.is_control_batch:
            partition_records.next_fetch_offset = batch.next_offset
            continue
        rows = list(batch)
        if rows and rows[0].offset < partition_records.next_fetch_offset:  # a batch begun before the fetch offset
            rows = [row for row in rows if row.offset >= partition_records.next_fetch_offset]
        values = list(map(_VALUE, rows))
        if None in values:
            values = [value or b"" for value in values]
        out.extend(map(_NEW_RECORD, zip(repeat(kind), repeat(topic), repeat(partition), map(_OFFSET, rows),
                                        map(_KEY, rows), values)))
        partition_records.next_fetch_offset = batch.next_offset
    return out


def _aborted(partition_records: Any, batch: Any) -> bool:
    """Whether a read_committed consumer skips `batch` as part of an aborted transaction, with
    aiokafka's bookkeeping of aborted producers up to it (its `_unpack_records`)."""
    if partition_records._isolation_level != READ_COMMITTED or batch.producer_id is None:
        return False
    partition_records._consume_aborted_up_to(batch.base_offset)
    if batch.is_control_batch and partition_records._contains_abort_marker(batch):
        partition_records._aborted_producers.discard(batch.producer_id)
    return bool(batch.is_transactional and batch.producer_id in partition_records._aborted_producers)
