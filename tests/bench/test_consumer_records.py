"""bench/consumer_records.py: the fetch it builds holds the workload's records in order, and both
ways of unpacking it give the same core records."""

from bench.consumer_records import feedback_values, fetched_bytes, partition_records
from streams.worker.aiokafka_private import unpack_records
from streams.worker.paths import to_record


def test_the_benchs_fetch_unpacks_to_the_same_records_both_ways() -> None:
    values = feedback_values(1_000)
    data = fetched_bytes(values)
    lean = unpack_records(partition_records(data), "impressions")
    assert [(record.offset, record.key, record.value) for record in lean] == [
        (offset, key, value) for offset, (key, value) in enumerate(values)]
    assert lean == [to_record("impressions", record) for record in partition_records(data)]
    assert len(values) == 1_000 and data.count(b'"type":"click"') > 0  # impressions and clicks both
