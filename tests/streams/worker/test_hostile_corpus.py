"""10,000+ hostile records over every input topic, mixed with valid traffic, through WorkerCore.

No Kafka: the records go through the calls the worker's agents make (add_items, rank, learn,
one partition per learn call). Nothing may escape, the counts must balance, every valid event
must be learned, and every dead letter must say why and fit the broker's 1 MB limit.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Sequence

import numpy as np
import pytest

from encoders.hashing import HashingEncoder
from online.config import SlatestreamConfig, parse_config
from online.events import Item
from online.policies import POLICIES
from online.policies.linear_ts import LinearThompsonSampling
from streams.dead_letter import DeadLetter, encode_dead_letter
from streams.testing import SharedTables
from streams.testing.hostile import HOSTILE_CLASSES, KINDS, CorpusRecord, by_phase, hostile_corpus, valid_traffic
from streams.worker.core import Record, WorkerCore
from streams.worker.table_store import unwrap

PARTITIONS = 4
BATCH = 200
ENCODER = HashingEncoder(dim=8)


def embed(items: Sequence[Item]) -> np.ndarray:
    return ENCODER.encode([item.text() for item in items])


def _partition(key: bytes | None) -> int:
    return zlib.crc32(key or b"") % PARTITIONS


def _records(corpus: list[CorpusRecord], seed: int) -> list[tuple[Record, CorpusRecord]]:
    """Kafka-like records (per kind and partition consecutive offsets), shuffled within each phase."""
    rng = np.random.default_rng(seed)
    offsets: Counter[tuple[str, int]] = Counter()
    out = []
    for phase in by_phase(corpus):
        for index in rng.permutation(len(phase)):
            source = phase[index]
            partition = _partition(source.key)
            offset = offsets[source.kind, partition]
            offsets[source.kind, partition] += 1
            out.append((Record(source.kind, f"t.{source.kind}", partition, offset, source.key, source.value), source))
    return out


def _drive(worker: WorkerCore, records: list[Record]) -> list[DeadLetter]:
    """Deliver records as the agents do: items and requests in batches, feedback and control
    in batches of one partition each."""
    dead: list[DeadLetter] = []
    for kind, handle in (("items", lambda b: worker.add_items(b)[1]), ("requests", lambda b: worker.rank(b)[1])):
        batch = [r for r in records if r.kind == kind]
        for start in range(0, len(batch), BATCH):
            dead += handle(batch[start : start + BATCH])
    feedback = [r for r in records if r.kind in ("impressions", "clicks", "control")]
    for start in range(0, len(feedback), BATCH):
        chunk = feedback[start : start + BATCH]
        for partition in range(PARTITIONS):
            mine = [r for r in chunk if r.partition == partition]
            if mine:
                dead += worker.learn(mine)
    return dead


Outcome = tuple[WorkerCore, dict[bytes, bytes], list[tuple[Record, CorpusRecord]], list[DeadLetter]]


def run_corpus(config: SlatestreamConfig, n: int, seed: int = 18, requests_per_user: int = 15) -> Outcome:
    """The worker, its state table, the delivered records and the dead letters."""
    traffic = valid_traffic(seed=seed, requests_per_user=requests_per_user)
    corpus = [*traffic.records, *hostile_corpus(traffic, seed=seed, n=n)]
    records = _records(corpus, seed=seed)
    table: dict[bytes, bytes] = {}
    worker = WorkerCore(config, SharedTables(table), embed, dim=8)
    dead = _drive(worker, [record for record, _ in records])  # nothing may escape
    return worker, table, records, dead


def _mismatches(records: list[tuple[Record, CorpusRecord]], dead: list[DeadLetter]) -> Counter[tuple[str, str, str]]:
    """(class, kind, expected) of records dead-lettered against expectation, or not when expected."""
    where = {(letter.source_topic, letter.partition, letter.offset) for letter in dead}
    wrong: Counter[tuple[str, str, str]] = Counter()
    for record, source in records:
        is_dead = (record.topic, record.partition, record.offset) in where
        if (source.expect == "dead") != is_dead and source.expect != "any":
            wrong[source.label, source.kind, source.expect] += 1
    return wrong


@pytest.fixture(scope="module")
def outcome() -> Outcome:
    return run_corpus(SlatestreamConfig(), n=10_000)


def test_the_corpus_covers_every_class_on_every_topic(outcome: Outcome) -> None:
    _, _, records, _ = outcome
    hostile = [source for _, source in records if source.label != "valid"]
    assert len(hostile) >= 10_000
    assert {(source.label, source.kind) for source in hostile} == {(c, k) for c in HOSTILE_CLASSES for k in KINDS}
    assert max(len(source.value) for source in hostile) > 2_000_000  # megabytes of string


def test_counts_balance_and_every_record_got_its_expected_outcome(outcome: Outcome) -> None:
    worker, _, records, dead = outcome
    where = {(letter.source_topic, letter.partition, letter.offset) for letter in dead}
    assert len(where) == len(dead)  # one dead letter per record at most

    assert worker.counts.received == len(records)
    assert worker.counts.balanced()
    assert not _mismatches(records, dead)
    duplicates = sum(source.expect == "skipped" for _, source in records)
    assert worker.counts.skipped_duplicates == duplicates > 0  # sent again under its event id: not learned


def test_every_valid_event_is_learned(outcome: Outcome) -> None:
    worker, table, records, dead = outcome
    where = {(letter.source_topic, letter.partition, letter.offset) for letter in dead}
    valid = [(record, source) for record, source in records if source.label == "valid"]
    assert not [source for record, source in valid if (record.topic, record.partition, record.offset) in where]
    items = [source for _, source in valid if source.kind == "items"]
    assert all(source.key.decode() in worker.catalog for source in items)

    policy = LinearThompsonSampling()
    exposures = sum(policy.decode_global(unwrap(table[f"linear_ts/global/{p}".encode()])[1]).n_exposures
                    for p in range(PARTITIONS) if f"linear_ts/global/{p}".encode() in table)
    shown = {"processed": 0, "skipped": 0, "any": 0}
    for record, source in records:
        if record.kind == "impressions" and source.expect != "dead" and (record.topic, record.partition,
                                                                          record.offset) not in where:
            shown[source.expect] += source.value.count(b'"item_id"')
    assert shown["processed"] <= exposures <= shown["processed"] + shown["any"]


def test_every_dead_letter_says_why_and_fits_the_broker_limit(outcome: Outcome) -> None:
    _, _, _, dead = outcome
    assert dead
    reasons = Counter()
    for letter in dead:
        assert letter.reason.strip() and letter.error_type
        assert len(encode_dead_letter(letter)) < 1_000_000
        reasons[letter.error_type] += 1
    assert set(reasons) >= {"EventDecodeError", "UnknownItemError", "RankError"}


@pytest.mark.slow
@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_every_policy_with_objectives_and_filters_survives_the_corpus(policy: str) -> None:
    config = parse_config({"scenarios": {"default": {
        "policy": {"name": policy}, "objectives": {"diversity": 0.3, "novelty": 0.1, "fairness": 0.1},
        "filters": {"exclude_shown_within_s": 600, "exclude_clicked_within_s": 600}}}})

    worker, _, records, dead = run_corpus(config, n=2_000, seed=19, requests_per_user=4)

    assert worker.counts.balanced() and worker.counts.received == len(records)
    assert not _mismatches(records, dead)
