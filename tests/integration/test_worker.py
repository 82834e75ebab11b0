"""The Faust worker end to end on the real broker: slates, learning, dead letters, counts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from online.events import Click, Impression, Item, RankRequest, ShownItem
from streams.client import SlatestreamClient
from streams.dead_letter import decode_dead_letter
from streams.settings import StreamSettings
from streams.topics import TopicNames, ensure_topics

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture
def worker(kafka_settings: StreamSettings, tmp_path: Path) -> Iterator[tuple[StreamSettings, Path]]:
    """A `slatestream worker` subprocess on this test's topics; yields (settings, log path)."""
    ensure_topics(kafka_settings)
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "SLATESTREAM_BROKER_URL": kafka_settings.broker_url,
        "SLATESTREAM_TOPIC_PREFIX": kafka_settings.topic_prefix,
        "SLATESTREAM_PARTITIONS": str(kafka_settings.partitions),
        "SLATESTREAM_STORE_DIR": str(tmp_path / "store"),
        "SLATESTREAM_BROKER_SESSION_TIMEOUT_S": "6",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "slatestream", "worker", "--dim", "16", "--n-draws", "32"],  # BERT, the default
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 240  # a first use exports BERT into the per-user cache (~30 s)
        while b"Worker ready" not in log.read_bytes():
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "worker did not start:\n" + log.read_text()[-3000:]
            time.sleep(0.5)
        yield kafka_settings, log
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def last_counts(log: Path) -> dict[str, int]:
    lines = [line for line in log.read_text().splitlines() if "counts Counts(" in line]
    assert lines, "the worker logged no counts"
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", lines[-1])}


def test_worker_ranks_learns_and_dead_letters(worker: tuple[StreamSettings, Path]) -> None:
    settings, log = worker
    names = TopicNames.from_settings(settings)
    with SlatestreamClient(settings) as client:
        for n in range(12):
            client.publish(Item(item_id=f"i{n}", fields={"title": f"{'red shoe' if n % 2 else 'blue hat'} {n}"}))
        client.flush()
        time.sleep(2.0)  # items are embedded before the first request
        candidates = tuple(f"i{n}" for n in range(12))
        first = client.request_slate(RankRequest(request_id="r0", user_id="u1", candidates=candidates, k=4),
                                     timeout_s=20)
        assert [i.position for i in first.items] == [0, 1, 2, 3]
        assert all(0 < i.propensity <= 1 for i in first.items)
        assert first.policy_version.startswith("linear_ts")
        for step in range(1, 16):  # u1 always clicks i3 when it is shown
            request_id = f"r{step}"
            slate = client.request_slate(
                RankRequest(request_id=request_id, user_id="u1", candidates=candidates, k=4), timeout_s=20)
            shown = tuple(ShownItem(item_id=i.item_id, position=i.position) for i in slate.items)
            shown = (*shown[:3], ShownItem(item_id="i3", position=3)) if "i3" not in {s.item_id for s in shown} \
                else shown
            client.publish(Impression(event_id=f"e{step}", request_id=request_id, user_id="u1", shown=shown))
            client.publish(Click(event_id=f"c{step}", request_id=request_id, user_id="u1", item_id="i3"))
        client.publish(Click(event_id="stray", request_id="never-ranked", user_id="u1", item_id="i3"))
        client.flush()
        client._producer.send(names.clicks, key=b"u1", value=b"{not json")  # a malformed record
        client._producer.send(names.requests, key=b"u2", value=b'{"type": "rank_request", "user_id": "u2"}')
        client.flush()
        time.sleep(3.0)
        after = client.request_slate(RankRequest(request_id="final", user_id="u1", candidates=candidates, k=12),
                                     timeout_s=20)
    means = {item.item_id: item.mean for item in after.items}
    assert means["i3"] == max(means.values())  # learned from the clicks through Kafka

    consumer = KafkaConsumer(names.dead_letter, bootstrap_servers=settings.bootstrap_servers(),
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    letters = [decode_dead_letter(record.value) for record in consumer]
    consumer.close()
    reasons = sorted((letter.error_type, letter.field or "") for letter in letters)
    assert reasons == [("EventDecodeError", "<json>"), ("EventDecodeError", "rank_request.request_id"),
                       ("UnknownRequestError", "")]
    assert {letter.original_bytes() for letter in letters} >= {b"{not json"}

    time.sleep(6.0)  # the worker logs its counts every 5 s
    counts = last_counts(log)
    done = sum(counts[k] for k in ("ranked", "learned", "items", "skipped_duplicates", "dead_lettered"))
    assert counts["received"] == done == 12 + 17 + 30 + 3
