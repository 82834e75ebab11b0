"""Harness of the fault suite (tests/integration/test_fault_*.py): raw records in, what the worker
made of them out, and the state an uninterrupted run learns from the same input.

    publish_raw(settings, records)                 # bytes as they are, to their topics
    read_topic(settings, topic)                    # every record up to the current end
    status(port)                                   # a worker's /status (counts, lag, catalog)
    reference_state(settings, model, requests, feedback)   # WorkerCore over the same input
    state_differences(learned, expected)           # [] when equal (counts exactly, float32 sums up to their order)

The reference runs the worker's own core in this process over the catalog the workers wrote
(their vectors, their projection), each record on its user's partition, without a fault: the
state a worker must end with whatever crashed, restarted or moved on the way.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from online.config import SlatestreamConfig
from online.events import Click, Impression, Item, RankRequest, encode_event
from online.policies.linear_ts import LinearThompsonSampling
from streams.client import event_key
from streams.settings import StreamSettings
from streams.state_changelog import ChangelogEntry, live_values
from streams.testing.tables import SharedTables
from streams.topics import TopicNames, create_topics, partition_of
from streams.worker.core import WorkerCore
from streams.worker.records import Record
from streams.worker.table_store import unwrap

WORKER_ARGS = ("--encoder", "hashing", "--dim", "16", "--n-draws", "8")
"""The suite's workers: text hashing (fast; BERT is the default), d = 16, 8 draws."""
LARGE_RECORD_BYTES = 4 * 1024 * 1024
"""What the suite's input topics accept (the broker's default is 1 MB): the hostile corpus has
records of several megabytes. Dead letters stay under the default."""
POLICY = LinearThompsonSampling()


def worker_model(dim: int = 16, n_draws: int = 8) -> SlatestreamConfig:
    """The model of a worker started with WORKER_ARGS (what `slatestream worker` builds)."""
    data = SlatestreamConfig().model_dump()
    data["embedding"].update(dim=dim, encoder="hashing")
    data["engine"].update(n_draws=n_draws)
    return SlatestreamConfig.model_validate(data)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def status(port: int, timeout_s: float = 5.0) -> dict[str, Any]:
    """A worker's GET /status (its SLATESTREAM_METRICS_PORT): counts, lag, catalog, assignment."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=timeout_s) as answer:
        loaded: dict[str, Any] = json.loads(answer.read())
    return loaded


def topic_of(settings: StreamSettings, kind: str) -> str:
    """The topic of an input kind ("items", "requests", "impressions", "clicks", "control")."""
    return f"{settings.topic_prefix}{kind}" if kind == "control" else getattr(TopicNames.from_settings(settings), kind)


def create_large_input_topics(settings: StreamSettings, max_bytes: int = LARGE_RECORD_BYTES) -> None:
    """The five input topics, accepting records up to max_bytes (before the worker creates them)."""
    specs = {}
    for kind in ("items", "requests", "impressions", "clicks", "control"):
        configs = {"max.message.bytes": str(max_bytes)}
        if kind == "items":
            configs["cleanup.policy"] = "compact"
        specs[topic_of(settings, kind)] = {"num_partitions": settings.partitions,
                                           "replication_factor": settings.replication_factor, "configs": configs}
    create_topics(settings, specs)


def publish_raw(settings: StreamSettings, records: Iterable[tuple[str, bytes | None, bytes]],
                max_bytes: int = LARGE_RECORD_BYTES) -> list[tuple[str, int, int]]:
    """Send (kind, key, value) records as they are, each to its kind's topic (partitioned by key
    like any client; no key: the producer's choice); [(topic, partition, offset)] in order."""
    producer = KafkaProducer(**settings.kafka_client_config(), acks="all", linger_ms=5, batch_size=512 * 1024,
                             max_request_size=max_bytes + 1024)
    try:
        futures = [producer.send(topic_of(settings, kind), key=key, value=value) for kind, key, value in records]
        producer.flush()
        return [(meta.topic, meta.partition, meta.offset) for meta in (f.get(timeout=60) for f in futures)]
    finally:
        producer.close()


def publish_events(settings: StreamSettings, events: Iterable[Item | RankRequest | Impression | Click]) -> list[
        tuple[str, int, int]]:
    """Events as SlatestreamClient sends them (keyed by user or item id); where each landed."""
    kinds = {"item": "items", "rank_request": "requests", "impression": "impressions", "click": "clicks"}
    return publish_raw(settings, ((kinds[e.type], event_key(e), encode_event(e)) for e in events))


def read_topic(settings: StreamSettings, topic: str, timeout_s: float = 60.0) -> list[ConsumerRecord]:
    """Every record of `topic` from its beginning to its end offsets now."""
    consumer = KafkaConsumer(**settings.kafka_client_config(), group_id=None, enable_auto_commit=False,
                             fetch_max_wait_ms=100, max_partition_fetch_bytes=LARGE_RECORD_BYTES + 1024)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: end offsets {ends} not reached within {timeout_s:g} s")
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
        return records
    finally:
        consumer.close(autocommit=False)


def reference_state(settings: StreamSettings, model: SlatestreamConfig, requests: Sequence[RankRequest],
                    feedback: Sequence[Impression | Click]) -> dict[str, bytes]:
    """The linear TS state (keys "linear_ts/user/..", "linear_ts/global/<partition>") the worker's
    core learns from `requests` (ranked first: clicks need them) and `feedback`, with no fault,
    over the vectors of the catalog topic the workers wrote."""
    table: dict[bytes, bytes] = {}
    core = WorkerCore(model, SharedTables(table), _no_embedding, model.embedding.dim)
    catalog: dict[bytes, bytes] = {}
    for record in read_topic(settings, TopicNames.from_settings(settings).catalog):
        if record.value is not None:
            catalog[bytes(record.key)] = bytes(record.value)
    for value in catalog.values():
        core.load_catalog_value(value)
    offsets: dict[tuple[str, int], int] = {}

    def records(kind: str, events: Iterable[RankRequest | Impression | Click]) -> dict[int, list[Record]]:
        by_partition: dict[int, list[Record]] = {}
        for event in events:
            key = event_key(event)
            partition = partition_of(key, settings.partitions)
            offset = offsets[kind, partition] = offsets.get((kind, partition), -1) + 1
            record = Record(kind, f"{settings.topic_prefix}{kind}", partition, offset, key, encode_event(event))
            by_partition.setdefault(partition, []).append(record)
        return by_partition

    for batch in records("requests", requests).values():
        core.rank(batch)
    impressions = records("impressions", [e for e in feedback if isinstance(e, Impression)])
    clicks = records("clicks", [e for e in feedback if isinstance(e, Click)])
    for partition in sorted({*impressions, *clicks}):
        dead = core.learn([*impressions.get(partition, []), *clicks.get(partition, [])])
        if dead:
            raise AssertionError(f"the reference dead-lettered {len(dead)} records: {dead[0].reason}")
    return {key.decode(): unwrap(value)[1] for key, value in table.items()
            if key.startswith((b"linear_ts/user/", b"linear_ts/global/"))}


def _no_embedding(items: Sequence[Item]) -> np.ndarray:
    raise AssertionError("the reference reads its vectors from the catalog topic; it embeds nothing")


def learned_state(entries: Mapping[bytes, ChangelogEntry]) -> dict[str, bytes]:
    """The linear TS user and population states of a changelog read back (tombstones left out)."""
    return {**live_values(dict(entries), b"linear_ts/user/"), **live_values(dict(entries), b"linear_ts/global/")}


SUM_TOLERANCE = 1e-5
"""Relative to the largest entry: float32 sums of a few thousand unit-norm terms, added in
another order, differ by ~n x 6e-8 of it at worst; a lost or doubled exposure moves an entry
by ~1/d of the diagonal (3e-2 at d = 32)."""


def sums_agree(ours: np.ndarray, theirs: np.ndarray) -> bool:
    """Whether two arrays of float sums are equal up to the order they were added in."""
    scale = max(1.0, float(np.abs(theirs).max(initial=0.0)))
    return bool(np.allclose(ours, theirs, rtol=SUM_TOLERANCE, atol=SUM_TOLERANCE * scale))


def state_differences(learned: Mapping[str, bytes], expected: Mapping[str, bytes]) -> list[str]:
    """What differs between two linear TS states (keys, Gram matrices, responses, counts); []
    when they are equal: counts exactly, float sums within `sums_agree` (batch splits reorder
    them, and the user state keeps them in float32)."""
    differences = [f"missing {key}" for key in sorted(set(expected) - set(learned))]
    differences += [f"unexpected {key}" for key in sorted(set(learned) - set(expected))]
    for key in sorted(set(learned) & set(expected)):
        decode = POLICY.decode_user if "/user/" in key else POLICY.decode_global
        ours, theirs = decode(learned[key]), decode(expected[key])
        if (ours.n_exposures, ours.reward_total) != (theirs.n_exposures, theirs.reward_total):
            differences.append(f"{key}: (exposures, rewards) {(ours.n_exposures, ours.reward_total)} != "
                               f"{(theirs.n_exposures, theirs.reward_total)}")
        elif not (sums_agree(ours.gram_upper, theirs.gram_upper) and sums_agree(ours.response, theirs.response)):
            differences.append(f"{key}: Gram matrix or response differ")
    return differences
