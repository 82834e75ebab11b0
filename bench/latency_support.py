"""Building blocks of bench/worker_latency.py: the slate reader, the open-loop sender, the echo
service (the transport-only baseline), latency summaries and the freshness probe.

Times are wall-clock seconds (`time.time()`), so they compare across processes and with the
Kafka record timestamps (CreateTime, epoch ms, set by the worker's producer when it sends).
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from online.events import Click, Impression, RankRequest, ShownItem, Slate, SlateItem, decode_slate_answer, encode_event
from streams.client import event_key
from streams.settings import StreamSettings
from streams.topics import TopicNames


@dataclass(frozen=True)
class Arrival:
    """When a slate for one request id became readable in the bench process.

    at_s: wall time the consumer's poll returned it; created_ms: the record's Kafka
    timestamp (CreateTime: when the answering process called send), epoch ms.
    """

    at_s: float
    created_ms: int


class SlateReader:
    """One kafka-python consumer over every partition of `topics` (no group, from the end),
    polled by a thread that records the arrival of every answer by request id.

    Slates whose request id starts with `keep_prefix` are also decoded and kept (the
    freshness probe reads their per-item mean and std); an answer that is a slate error
    (`decode_slate_answer`) counts as an arrival and is counted in `errors`.
    """

    def __init__(self, settings: StreamSettings, topics: Sequence[str], keep_prefix: str = "fr") -> None:
        self.keep_prefix = keep_prefix
        self.arrivals: dict[str, Arrival] = {}
        self.kept: dict[str, Slate] = {}
        self.errors = 0
        self.cond = threading.Condition()
        self._consumer = KafkaConsumer(**settings.kafka_client_config(), group_id=None, enable_auto_commit=False,
                                       fetch_max_wait_ms=20, client_id="latency-bench-reader")
        partitions = [TopicPartition(topic, p) for topic in topics
                      for p in sorted(self._consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            raise RuntimeError(f"none of the topics {list(topics)} exists")
        self._consumer.assign(partitions)
        for partition, end in self._consumer.end_offsets(partitions).items():
            self._consumer.seek(partition, end)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="latency-bench-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            batches = self._consumer.poll(timeout_ms=50)
            now = time.time()
            for records in batches.values():
                for record in records:
                    payload = json.loads(record.value)
                    request_id = payload["request_id"]
                    slate = decode_slate_answer(record.value) if request_id.startswith(self.keep_prefix) else None
                    with self.cond:
                        if request_id not in self.arrivals:  # the first answer counts
                            self.arrivals[request_id] = Arrival(now, int(record.timestamp))
                            self.errors += payload.get("type") == "slate_error"
                            if isinstance(slate, Slate):
                                self.kept[request_id] = slate
            if batches:
                with self.cond:
                    self.cond.notify_all()

    def wait_all(self, request_ids: Sequence[str], timeout_s: float) -> int:
        """Block until every id has an answer or timeout_s passed; returns how many are missing."""
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while True:
                missing = sum(request_id not in self.arrivals for request_id in request_ids)
                remaining = deadline - time.monotonic()
                if missing == 0 or remaining <= 0:
                    return missing
                self.cond.wait(min(remaining, 0.5))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._consumer.close(autocommit=False)


def make_producer(settings: StreamSettings) -> KafkaProducer:
    """What SlatestreamClient uses (acks=all), sending at once (linger 0)."""
    return KafkaProducer(**settings.kafka_client_config(), acks="all", linger_ms=0, client_id="latency-bench")


def encoded_requests(prefix: str, count: int, users: Sequence[str], item_ids: Sequence[str], candidates: int,
                     rng: np.random.Generator, k: int = 10) -> list[tuple[str, bytes, bytes]]:
    """`count` RankRequests with `candidates` distinct random candidates each, as (request id, key, value)."""
    if not 0 < candidates <= len(item_ids):
        raise ValueError(f"--candidates must be in 1..{len(item_ids)} (the catalog size), got {candidates}")
    out = []
    for n in range(count):
        rows = rng.choice(len(item_ids), candidates, replace=False)
        request = RankRequest(request_id=f"{prefix}{n}", user_id=users[int(rng.integers(len(users)))], k=k,
                              candidates=tuple(item_ids[int(row)] for row in rows))
        out.append((request.request_id, event_key(request), encode_event(request)))
    return out


def send_open_loop(producer: KafkaProducer, topic: str, requests: Sequence[tuple[str, bytes, bytes]],
                   rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Send requests[i] at start + i / rate (fixed in advance); returns float64[n] scheduled and sent times.

    A sender that falls behind sends at once and keeps the schedule, so its lag counts in the
    latency measured from the scheduled time (no coordinated omission).
    """
    scheduled = time.time() + 0.1 + np.arange(len(requests)) / rate
    sent = np.empty(len(requests))
    for n, (_, key, value) in enumerate(requests):
        delay = scheduled[n] - time.time()
        if delay > 0:
            time.sleep(delay)
        producer.send(topic, key=key, value=value)
        sent[n] = time.time()
    producer.flush()
    return scheduled, sent


@dataclass(frozen=True)
class LatencySummary:
    """Latency percentiles in ms over all requests (an unanswered request counts as infinite)."""

    count: int
    missing: int
    mean: float
    p50: float
    p90: float
    p99: float
    max: float

    @staticmethod
    def of(latencies_s: Sequence[float]) -> LatencySummary:
        values = np.asarray(latencies_s, dtype=np.float64) * 1e3
        if len(values) == 0:
            raise ValueError("no latency samples")
        p50, p90, p99, top = np.percentile(values, [50, 90, 99, 100])
        return LatencySummary(len(values), int(np.isinf(values).sum()), float(values.mean()), float(p50),
                              float(p90), float(p99), float(top))

    def line(self) -> str:
        lost = f", {self.missing} unanswered (counted as infinite)" if self.missing else ""
        return (f"p50 {self.p50:8.2f}  p90 {self.p90:8.2f}  p99 {self.p99:8.2f}  max {self.max:8.2f} ms "
                f"(n={self.count}{lost})")


def slate_item(slate: Slate, item_id: str) -> SlateItem:
    """The entry of `item_id` in `slate` (KeyError naming it when the slate lacks it)."""
    for item in slate.items:
        if item.item_id == item_id:
            return item
    raise KeyError(f"slate {slate.request_id} has no item {item_id}")


@dataclass(frozen=True)
class FreshnessSample:
    """One user's probe: seconds from publishing the impression (click) to the first slate
    whose std (mean) of the shown (clicked) item differs from the slate before; `direction`
    is +1 when the clicked item's mean went up (a click must raise it), -1 when down."""

    impression_s: float
    click_s: float
    direction: int


class FreshnessProbe:
    """Publishes feedback for one user at a time and polls rank requests until a slate shows it.

    Each probe ranks a fixed set of `k` candidates with k = len(candidates), so the target
    item is in every slate. The slate's `std` of an item depends only on the user's state
    (its Gram matrix), its `mean` on the user's and the partition's population state; both
    are deterministic given the state (Thompson draws only change `score`). With no other
    feedback in flight, a changed std is the impression applied, and a changed mean after
    that is the click applied.
    """

    def __init__(self, producer: KafkaProducer, reader: SlateReader, names: TopicNames, poll_s: float,
                 timeout_s: float) -> None:
        self.producer, self.reader, self.names = producer, reader, names
        self.poll_s, self.timeout_s = poll_s, timeout_s

    def _request(self, request_id: str, user_id: str, candidates: tuple[str, ...]) -> None:
        request = RankRequest(request_id=request_id, user_id=user_id, candidates=candidates, k=len(candidates))
        self.producer.send(self.names.requests, key=event_key(request), value=encode_event(request))

    def _publish(self, event: Impression | Click) -> float:
        self.producer.send(self.names.for_event_type(event.type), key=event_key(event), value=encode_event(event))
        published = time.time()
        self.producer.flush()
        return published

    def poll_until(self, prefix: str, user_id: str, candidates: tuple[str, ...], since_s: float,
                   changed: Callable[[Slate], bool]) -> tuple[Slate, float]:
        """Send a request every poll_s until an answer satisfies `changed`; returns it and its
        arrival minus since_s (the earliest arrival among satisfying answers)."""
        sent: list[str] = []
        seen: set[str] = set()
        deadline = time.monotonic() + self.timeout_s
        next_send = time.monotonic()
        while time.monotonic() < deadline:
            if time.monotonic() >= next_send:
                sent.append(f"{prefix}{len(sent)}")
                self._request(sent[-1], user_id, candidates)
                next_send += self.poll_s
            with self.reader.cond:
                self.reader.cond.wait(max(0.0, next_send - time.monotonic()))
                answered = [rid for rid in sent if rid in self.reader.kept and rid not in seen]
            seen.update(answered)
            hits = [rid for rid in answered if changed(self.reader.kept[rid])]
            if hits:
                winner = min(hits, key=lambda rid: self.reader.arrivals[rid].at_s)
                return self.reader.kept[winner], self.reader.arrivals[winner].at_s - since_s
        raise TimeoutError(f"no slate of {user_id} changed within {self.timeout_s:g} s ({prefix})")

    def probe(self, tag: str, user_id: str, candidates: tuple[str, ...]) -> FreshnessSample:
        """Reference slate, impression (target = candidates[0] shown first), then its click."""
        target = candidates[0]
        reference_id = f"fr{tag}-ref"
        self._request(reference_id, user_id, candidates)
        if self.reader.wait_all([reference_id], self.timeout_s):
            raise TimeoutError(f"no reference slate for {user_id}")
        before = self.reader.kept[reference_id]
        shown = tuple(ShownItem(item_id=item, position=n) for n, item in enumerate(candidates[:5]))
        impression = Impression(event_id=f"fr{tag}-e", request_id=reference_id, user_id=user_id, shown=shown)
        shown_at = self._publish(impression)
        std_before = slate_item(before, target).std
        seen, impression_s = self.poll_until(f"fr{tag}-i", user_id, candidates, shown_at,
                                             lambda slate: slate_item(slate, target).std != std_before)
        mean_before = slate_item(seen, target).mean
        clicked_at = self._publish(Click(event_id=f"fr{tag}-c", request_id=reference_id, user_id=user_id,
                                         item_id=target))
        after, click_s = self.poll_until(f"fr{tag}-c", user_id, candidates, clicked_at,
                                         lambda slate: slate_item(slate, target).mean != mean_before)
        return FreshnessSample(impression_s, click_s, 1 if slate_item(after, target).mean > mean_before else -1)


async def _echo(bootstrap: list[str], source: str, target: str, n_partitions: int) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka import TopicPartition as ATopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                fetch_max_wait_ms=1500)  # Faust's consumer waits up to 1500 ms too
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await consumer.start()
    await producer.start()
    try:
        partitions = [ATopicPartition(source, p) for p in range(n_partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for partition in partitions:
            await consumer.position(partition)
        print("echo ready", flush=True)
        while True:
            for records in (await consumer.getmany(timeout_ms=100)).values():
                for record in records:
                    request_id = json.loads(record.value)["request_id"]
                    await producer.send(target, key=record.key, value=json.dumps({"request_id": request_id}).encode())
    finally:
        await producer.stop()
        await consumer.stop()


def echo_main(argv: Sequence[str]) -> None:
    """`python -m bench.latency_support BOOTSTRAP SOURCE TARGET PARTITIONS`: answer each request with its id,
    no ranking."""
    bootstrap, source, target, partitions = argv
    asyncio.run(_echo(bootstrap.split(","), source, target, int(partitions)))


if __name__ == "__main__":
    echo_main(sys.argv[1:])
