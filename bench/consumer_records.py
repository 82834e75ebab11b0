"""What turning fetched bytes into the core's records costs the worker's consumer: aiokafka's own
path (a `ConsumerRecord` per record, then `to_record`) against the lean one the worker takes for
its feedback lane (streams.worker.aiokafka_private.unpack_records), in the same process.

    .venv/bin/python bench/consumer_records.py [--records 105058] [--repeats 7]

Encodes the impressions and clicks of a seeded workload (streams.testing.make_workload, the
throughput bench's default shape) as one partition's fetch would bring them (record batches of
~16 KB, format v2, CRCs checked), then unpacks the same bytes both ways, alternating, with the
cyclic collector off. Prints each way's median microseconds a record and the ratio. Both give
equal records (checked). No broker: the worker's own consumer thread does exactly this to each
fetch (aiokafka's `FetchResult.getall`).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiokafka.consumer.fetcher import READ_COMMITTED, PartitionRecords  # noqa: E402
from aiokafka.record.default_records import DefaultRecordBatchBuilder  # noqa: E402
from aiokafka.record.memory_records import MemoryRecords  # noqa: E402
from aiokafka.structs import TopicPartition  # noqa: E402

from online.events import encode_event  # noqa: E402
from streams.client import event_key  # noqa: E402
from streams.testing import make_workload  # noqa: E402
from streams.worker.aiokafka_private import unpack_records  # noqa: E402
from streams.worker.paths import to_record  # noqa: E402
from streams.worker.records import Record  # noqa: E402

TP = TopicPartition("impressions", 0)
BATCH_BYTES = 16_384  # the producer's default batch size


def fetched_bytes(values: list[tuple[bytes, bytes]]) -> bytes:
    """(key, value) pairs as consecutive record batches of ~BATCH_BYTES, offsets from 0."""
    out = bytearray()
    offset = 0
    while offset < len(values):
        builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0, producer_id=-1,
                                            producer_epoch=-1, base_sequence=-1, batch_size=BATCH_BYTES)
        first = offset
        while offset < len(values) and builder.append(offset - first, timestamp=1_700_000_000_000,
                                                      key=values[offset][0], value=values[offset][1],
                                                      headers=[]) is not None:
            offset += 1
        raw = bytearray(builder.build())
        raw[:8] = first.to_bytes(8, "big", signed=True)
        out += raw
    return bytes(out)


def feedback_values(records: int) -> list[tuple[bytes, bytes]]:
    """The keys and JSON values of the first `records` impressions and clicks of the workload
    (requests enough for them: each brings an impression and, half the time, a click)."""
    workload = make_workload(n_users=4_700, n_items=200, n_requests=records * 2 // 3 + 1, shown=5,
                             click_rate=0.5, seed=0)
    return [(event_key(event), encode_event(event)) for event in workload.feedback()[:records]]


def partition_records(data: bytes) -> PartitionRecords:
    return PartitionRecords(TP, MemoryRecords(data), None, 0, None, None, True, READ_COMMITTED)


def timed(unpack: Callable[[PartitionRecords], list[Record]], data: bytes) -> tuple[float, list[Record]]:
    """(seconds, records) of one unpacking of `data`."""
    started = time.perf_counter()
    out = unpack(partition_records(data))
    return time.perf_counter() - started, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=105_058)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    values = feedback_values(args.records)
    data, count = fetched_bytes(values), len(values)
    ways: dict[str, Callable[[PartitionRecords], list[Record]]] = {
        "aiokafka's ConsumerRecords, then to_record": lambda records: [to_record("impressions", r) for r in records],
        "lean (streams.worker.aiokafka_private)": lambda records: unpack_records(records, "impressions"),
    }
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    outputs: dict[str, list[Record]] = {}
    gc.disable()
    for _ in range(args.repeats):
        for name, unpack in ways.items():
            elapsed, outputs[name] = timed(unpack, data)
            seconds[name].append(elapsed)
    gc.enable()
    first, lean = (outputs[name] for name in ways)
    assert first == lean, "the two ways gave different records"
    print(f"{count:,} records ({len(data) / 1e6:.1f} MB in batches of ~{BATCH_BYTES // 1024} KB), "
          f"median of {args.repeats}:")
    medians = {name: statistics.median(times) / count * 1e6 for name, times in seconds.items()}
    for name, micros in medians.items():
        print(f"  {name}: {micros:.2f} us a record")
    old, new = medians.values()
    print(f"lean / aiokafka's: {new / old:.2f} ({(old - new) * count / 1e6:.3f} s less a window of {count:,})")


if __name__ == "__main__":
    main()
