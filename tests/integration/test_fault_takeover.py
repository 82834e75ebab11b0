"""Fault suite (d): two workers share the partitions; items are published while both run; one of
them is killed (SIGKILL) at a seeded random moment after more items came, while feedback is still
to come, clicks on the slates it served included. The survivor knows every item, no valid
feedback is dead-lettered, and the state is exact (the worker core's over the same input).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from online.events import Item, RankRequest
from streams.client import SlateRequestError, SlatestreamClient
from streams.control import ensure_control_topic
from streams.settings import StreamSettings
from streams.state_changelog import caught_up, feedback_progress, read_changelog
from streams.testing import WorkerProcess, make_workload, publish, split
from streams.testing.faults import (
    POLICY,
    WORKER_ARGS,
    free_port,
    learned_state,
    read_topic,
    reference_state,
    state_differences,
    status,
    worker_model,
)
from streams.topics import TopicNames, ensure_topics, partition_of

from .test_worker_guarantee import count_slates
from .worker_helpers import poll

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

SEED = 41


def owns(port: int) -> set[int]:
    try:
        return set(status(port)["assigned_partitions"])
    except OSError:
        return set()


def serves_all(client: SlatestreamClient, user: str, items: tuple[str, ...]) -> bool:
    request = RankRequest(request_id=f"probe-{user}-{time.monotonic_ns()}", user_id=user, candidates=items,
                          k=len(items))
    try:
        return {item.item_id for item in client.request_slate(request, timeout_s=5).items} == set(items)
    except (TimeoutError, SlateRequestError):  # not served yet, or "no candidate is in the catalog" yet
        return False


def test_the_survivor_of_two_workers_knows_every_item_and_loses_no_feedback(kafka_settings: StreamSettings,
                                                                              tmp_path: Path) -> None:
    settings, rng = kafka_settings, np.random.default_rng(SEED)
    workload = make_workload(n_users=40, n_items=24, n_requests=800, seed=SEED)
    late_items = [Item(item_id=f"late-{n}", fields={"title": f"late {'red' if n % 2 else 'blue'} item {n}"})
                  for n in range(12)]
    ensure_topics(settings)
    ensure_control_topic(settings)
    ports = free_port(), free_port()
    a, b = (WorkerProcess(settings, tmp_path / f"store-{name}", tmp_path / f"{name}.log", WORKER_ARGS,
                          metrics_port=port).start() for name, port in zip("ab", ports, strict=True))
    first, second = split(workload.feedback(), 2)
    try:
        a.wait_ready(180)
        b.wait_ready(180)
        poll(lambda: owns(ports[0]) | owns(ports[1]) == set(range(settings.partitions))
             and not owns(ports[0]) & owns(ports[1]) and all(owns(p) for p in ports), 180, "both to own partitions")
        publish(settings, workload.items)  # while both run
        poll(lambda: all(status(p)["catalog_items"] >= len(workload.items) for p in ports), 60, "both catalogs")
        publish(settings, workload.requests)
        poll(lambda: count_slates(settings) >= len(workload.requests), 240, "every slate")
        publish(settings, first)
        publish(settings, late_items)  # more items while both run, then one of them dies
        time.sleep(rng.uniform(0.0, 0.5))
        a.kill()
        killed = time.monotonic()
        publish(settings, second)  # clicks on slates A served included
        poll(lambda: owns(ports[1]) == set(range(settings.partitions)), 120, "B to take over every partition",
             interval_s=0.2)
        took_over = time.monotonic() - killed
        poll(lambda: caught_up(feedback_progress(settings, read_changelog(settings))), 240, "every record learned",
             interval_s=1.0)
        learned_all = time.monotonic() - killed
        everything = tuple(item.item_id for item in (*workload.items, *late_items))
        users = {partition_of(f"probe-{n}", settings.partitions): f"probe-{n}" for n in range(64)}
        with SlatestreamClient(settings) as client:
            for user in users.values():  # one user per partition: every partition's engine knows every item
                poll(lambda u=user: serves_all(client, u, everything), 60, f"B to serve every item to {user}")
        counts = status(ports[1])["counts"]
        learned = learned_state(read_changelog(settings))
        expected = reference_state(settings, worker_model(), workload.requests, workload.feedback())
    finally:
        b.stop()
        a.stop()

    assert len(users) == settings.partitions
    letters = read_topic(settings, TopicNames.from_settings(settings).dead_letter)
    assert not letters and counts["dead_lettered"] == 0, (len(letters), counts)
    assert not state_differences(learned, expected), state_differences(learned, expected)[:10]
    populations = [POLICY.decode_global(blob) for key, blob in learned.items() if "/global/" in key]
    assert sum(p.n_exposures for p in populations) == workload.exposures
    assert sum(p.reward_total for p in populations) == len(workload.clicks)
    print(f"takeover: B owned every partition {took_over:.1f} s after the kill, had learned every record "
          f"{learned_all:.1f} s after it")
