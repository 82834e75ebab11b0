"""Fault suite (a): the seeded hostile corpus (10,000+ records over every input topic, megabyte
records included) through a real broker to a real worker, mixed with valid traffic. The worker
stays up; in = processed + dead-lettered by its own counts and by the dead-letter topic; every
valid event is learned; every dead letter carries its reason (and fits the topic's 1 MB limit).
Items without a key never reach a worker: the items topic is compacted and the broker refuses
them (InvalidRecordError), so they are left out here.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from streams.control import ensure_control_topic
from streams.dead_letter import decode_dead_letter
from streams.settings import StreamSettings
from streams.state_changelog import read_changelog
from streams.testing import WorkerProcess
from streams.testing.faults import (
    POLICY,
    WORKER_ARGS,
    create_large_input_topics,
    free_port,
    learned_state,
    publish_raw,
    read_topic,
    status,
)
from streams.testing.hostile import CorpusRecord, by_phase, hostile_corpus, valid_traffic
from streams.topics import TopicNames, ensure_topics

from .worker_helpers import poll

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

SEED = 18


def expected_learning(records: list[CorpusRecord]) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """Per user: exposures of the impressions that must be learned, and (least, most) click
    rewards (clicks expected "any" may go either way)."""
    exposures: dict[str, float] = defaultdict(float)
    rewards: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for record in records:
        if record.kind not in ("impressions", "clicks") or record.expect not in ("processed", "any"):
            continue
        event = json.loads(record.value)
        if record.kind == "impressions":
            exposures[event["user_id"]] += len(event["shown"])
        else:
            reward = float(event.get("reward", 1.0))
            rewards[event["user_id"]][1] += reward
            if record.expect == "processed":
                rewards[event["user_id"]][0] += reward
    return dict(exposures), {user: (low, high) for user, (low, high) in rewards.items()}


def test_hostile_corpus_through_kafka(kafka_settings: StreamSettings, tmp_path: Path) -> None:
    settings = kafka_settings
    traffic = valid_traffic(seed=SEED)
    corpus = [r for r in (*traffic.records, *hostile_corpus(traffic, seed=SEED, n=10_100))
              if not (r.kind == "items" and r.key is None)]  # a compacted topic refuses keyless records
    assert sum(record.label != "valid" for record in corpus) >= 10_000
    create_large_input_topics(settings)
    ensure_topics(settings)
    ensure_control_topic(settings)
    port = free_port()
    worker = WorkerProcess(settings, tmp_path / "store", tmp_path / "worker.log", WORKER_ARGS, metrics_port=port)
    where: dict[tuple[str, int, int], CorpusRecord] = {}
    began = time.monotonic()
    try:
        worker.start().wait_ready()
        for phase in by_phase(corpus):
            landed = publish_raw(settings, [(r.kind, r.key, r.value) for r in phase])
            where.update(zip(landed, phase, strict=True))
            poll(lambda: status(port)["counts"]["received"] >= len(where), 300,
                 f"the worker to take {len(where)} records", interval_s=1.0)
            if phase[0].kind == "items":  # requests retrieve from the catalog: all its valid items first
                valid_items = sum(r.kind == "items" and r.label == "valid" for r in phase)
                poll(lambda n=valid_items: status(port)["catalog_items"] >= n, 60, "the catalog")
        exposures, rewards = expected_learning(list(where.values()))

        def learned_all() -> bool:
            state = learned_state(read_changelog(settings))
            return sum(POLICY.decode_global(b).n_exposures for k, b in state.items() if "/global/" in k) >= sum(
                exposures.values())

        poll(learned_all, 120, "every exposure in the changelog", interval_s=1.0)
        counts = status(port)["counts"]
        assert worker.process is not None and worker.process.poll() is None, worker.log_text()[-3000:]
        assert worker.log_text().count("Worker ready") == 1  # up all along, never restarted
    finally:
        worker.stop()
    took = time.monotonic() - began

    # in = processed + dead-lettered, by the worker's counts
    assert counts["received"] == len(corpus), (counts, len(corpus))
    outcomes = ("ranked", "learned", "items", "skipped_duplicates", "dead_lettered", "controls")
    assert counts["received"] == sum(counts[key] for key in outcomes), counts

    # ... and by the dead-letter topic: one letter per refused record, each with its reason
    names = TopicNames.from_settings(settings)
    letters = [decode_dead_letter(record.value) for record in read_topic(settings, names.dead_letter)]
    assert len(letters) == counts["dead_lettered"]
    dead = {(letter.source_topic, letter.partition, letter.offset) for letter in letters}
    assert len(dead) == len(letters) and dead <= set(where)
    assert all(letter.reason.strip() and letter.error_type for letter in letters)
    assert max(len(record.value) for record in corpus) > 2_000_000  # megabyte records went through Kafka
    wrong = Counter((where[at].label, where[at].kind, where[at].expect) for at in where
                    if where[at].expect != "any" and (where[at].expect == "dead") != (at in dead))
    assert not wrong, wrong

    # every valid event learned: items in the catalog, a slate per request, feedback in the state
    catalog = {bytes(record.key).decode() for record in read_topic(settings, names.catalog)}
    assert set(traffic.item_ids) <= catalog
    slates = {json.loads(record.value)["request_id"] for record in read_topic(settings, names.slates)}
    assert {event["request_id"] for event in traffic.events["requests"]} <= slates
    state = learned_state(read_changelog(settings))
    users = {key.rsplit("/", 1)[1]: POLICY.decode_user(blob) for key, blob in state.items() if "/user/" in key}
    assert {user: learned.n_exposures for user, learned in users.items() if learned.n_exposures} == exposures
    for user, (low, high) in rewards.items():
        got = users[user].reward_total if user in users else 0.0
        assert low <= got <= high, (user, got, low, high)
    populations = [POLICY.decode_global(blob) for key, blob in state.items() if "/global/" in key]
    assert sum(p.n_exposures for p in populations) == sum(exposures.values())
    print(f"hostile corpus: {len(corpus)} records ({len(corpus) - len(traffic.records)} hostile), "
          f"{counts['dead_lettered']} dead letters, {took:.0f} s")
