"""Two workers share one catalog and one projection: items published while both run reach both
(through the catalog topic), feedback on any item is learned, the projection is agreed once."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from online.events import Impression, Item, RankRequest, ShownItem
from streams.client import SlateRequestError, SlatestreamClient
from streams.control import ensure_control_topic
from streams.projection import read_projection
from streams.settings import StreamSettings
from streams.state_changelog import caught_up, feedback_progress, read_changelog
from streams.testing import WorkerProcess, publish
from streams.topics import ensure_topics, partition_of

from .worker_helpers import poll

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ARGS = ("--encoder", "hashing", "--dim", "16", "--n-draws", "8")


def users_on(worker_partitions: set[int], partitions: int, n: int = 3) -> list[str]:
    """n user ids whose records land on the given partitions."""
    return [u for u in (f"user-{i}" for i in range(10_000)) if partition_of(u, partitions) in worker_partitions][:n]


def assigned(worker: WorkerProcess) -> set[int]:
    found = re.findall(r"assigned partitions \[([\d, ]*)\]", worker.log_text())
    return set() if not found else {int(p) for p in found[-1].replace(" ", "").split(",") if p}


def projections(worker: WorkerProcess) -> set[str]:
    return set(re.findall(r"projection ([0-9a-f]{12}) (?:read from|agreed through)", worker.log_text()))


def test_items_published_while_two_workers_run_reach_both(kafka_settings: StreamSettings, tmp_path: Path) -> None:
    settings = kafka_settings
    ensure_topics(settings)
    ensure_control_topic(settings)
    a = WorkerProcess(settings, tmp_path / "store-a", tmp_path / "a.log", ARGS).start()
    b = WorkerProcess(settings, tmp_path / "store-b", tmp_path / "b.log", ARGS).start()
    try:
        a.wait_ready()
        b.wait_ready()
        poll(lambda: bool(assigned(a)) and bool(assigned(b)) and assigned(a) | assigned(b) == set(
            range(settings.partitions)) and not assigned(a) & assigned(b), 120, "both workers to own partitions")
        items = [Item(item_id=f"item-{n}", fields={"title": f"{'red shoe' if n % 2 else 'blue hat'} {n}"})
                 for n in range(24)]
        written = time.monotonic()
        publish(settings, items)
        candidates = tuple(item.item_id for item in items)
        with SlatestreamClient(settings) as client:
            seen_at: dict[str, float] = {}
            for name, worker in (("a", a), ("b", b)):
                user = users_on(assigned(worker), settings.partitions, 1)[0]

                def knows_all(user: str = user, name: str = name) -> bool:
                    request = RankRequest(request_id=f"{name}-{time.monotonic_ns()}", user_id=user,
                                          candidates=candidates, k=len(candidates))
                    try:
                        slate = client.request_slate(request, timeout_s=5)
                    except (TimeoutError, SlateRequestError):  # not served yet, or "no candidate is in the catalog" yet
                        return False
                    return len(slate.items) == len(candidates)

                poll(knows_all, 60, f"worker {name} to know all 24 items", interval_s=0.2)
                seen_at[name] = time.monotonic() - written
            # feedback on every item, from users of both workers: none dead-lettered as unknown
            shown = []
            for n, user in enumerate(users_on(assigned(a), settings.partitions) + users_on(assigned(b),
                                                                                          settings.partitions)):
                request = RankRequest(request_id=f"fb-{n}", user_id=user, candidates=candidates, k=len(candidates))
                slate = client.request_slate(request, timeout_s=20)
                shown.append(Impression(event_id=f"e-{n}", request_id=request.request_id, user_id=user,
                                        shown=tuple(ShownItem(item_id=i.item_id, position=i.position,
                                                              propensity=i.propensity) for i in slate.items)))
            publish(settings, shown)
        poll(lambda: caught_up(feedback_progress(settings, read_changelog(settings))), 120, "feedback learned")
        for worker in (a, b):
            poll(lambda worker=worker: worker.counts().get("learned", 0) > 0 or not shown, 30, "counts")
            assert "UnknownItemError" not in worker.log_text().split("by_reason")[-1]
        # one projection, agreed through Kafka, used by both workers
        assert len(projections(a) | projections(b)) == 1, (projections(a), projections(b))
        assert seen_at["a"] < 30 and seen_at["b"] < 30, seen_at  # the bound measured in bench/catalog_latency.py
    finally:
        a.stop()
        b.stop()
    found = read_projection(settings, next(iter(_keys(settings))))
    assert found is not None and found.projection.version in projections(a)


def _keys(settings: StreamSettings) -> set[str]:
    """The keys of the projection topic's records."""
    from kafka import KafkaConsumer, TopicPartition

    from streams.projection import projection_topic

    consumer = KafkaConsumer(**settings.kafka_client_config(), group_id=None, enable_auto_commit=False)
    try:
        tp = TopicPartition(projection_topic(settings), 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        keys: set[str] = set()
        for records in consumer.poll(timeout_ms=5000).values():
            keys.update(record.key.decode() for record in records)
        return keys
    finally:
        consumer.close(autocommit=False)
