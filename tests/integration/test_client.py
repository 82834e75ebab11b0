"""SlatestreamClient against the real broker: bytes, keys, partitions, awaiting slates."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.partitioner import murmur2

import streams.client
from online.events import (
    Click,
    Impression,
    Item,
    RankRequest,
    ShownItem,
    Slate,
    SlateItem,
    decode_event,
    encode_event,
)
from streams.client import SlatestreamClient
from streams.settings import StreamSettings
from streams.topics import TopicNames, ensure_topics

pytestmark = pytest.mark.kafka

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def topics(kafka_settings: StreamSettings) -> TopicNames:
    ensure_topics(kafka_settings)
    return TopicNames.from_settings(kafka_settings)


@pytest.fixture
def client(kafka_settings: StreamSettings, topics: TopicNames) -> Iterator[SlatestreamClient]:
    with SlatestreamClient(kafka_settings) as client:
        yield client


@pytest.fixture
def worker(kafka_settings: StreamSettings) -> Iterator[KafkaProducer]:
    """A raw producer standing in for the streaming worker that writes slates."""
    producer = KafkaProducer(**kafka_settings.kafka_client_config(), acks="all")
    yield producer
    producer.close()


def read_all(
    settings: StreamSettings, topics: list[str], expected: int, timeout_s: float = 15.0
) -> list[ConsumerRecord]:
    """Every record of `topics` from the beginning, once `expected` have arrived."""
    consumer = KafkaConsumer(**settings.kafka_client_config(), group_id=None, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t))]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout_s
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def slate_for(request_id: str, user_id: str, item: str = "a") -> Slate:
    return Slate(
        request_id=request_id, user_id=user_id, scenario="default", policy="linear_ts",
        policy_version="v1", time=T0,
        items=(SlateItem(item_id=item, position=0, score=0.5, mean=0.4, std=0.1, explored=False,
                         propensity=0.9),),
    )


def every_event_type() -> list[RankRequest | Impression | Click | Item]:
    return [
        RankRequest(request_id="r1", user_id="u1", candidates=("a", "b"), context={"x": 0.5},
                    context_text="red shoes", k=2, time=T0),
        Impression(event_id="e1", request_id="r1", user_id="u1",
                   shown=(ShownItem(item_id="a", position=0, propensity=0.7),
                          ShownItem(item_id="b", position=1)), time=T0),
        Click(event_id="e2", request_id="r1", user_id="u1", item_id="a", time=T0),
        Item(item_id="a", fields={"title": "Red shoes", "body": "Size 42 ünïcode"},
             attributes={"color": "red"}, provider="p1", time=T0),
    ]


def test_every_event_type_reads_back_byte_identical_with_its_key(
    kafka_settings: StreamSettings, topics: TopicNames, client: SlatestreamClient
) -> None:
    events = every_event_type()
    for event in events:
        client.publish(event)
    client.flush(10)

    records = read_all(kafka_settings, list(topics.all()), expected=len(events))

    got = {record.topic: (record.key, record.value) for record in records}
    assert len(records) == len(events)
    assert got == {
        topics.requests: (b"u1", encode_event(events[0])),
        topics.impressions: (b"u1", encode_event(events[1])),
        topics.clicks: (b"u1", encode_event(events[2])),
        topics.items: (b"a", encode_event(events[3])),
    }


def test_events_of_one_user_share_one_partition_number(
    kafka_settings: StreamSettings, topics: TopicNames, client: SlatestreamClient
) -> None:
    users = [f"user-{n}" for n in range(24)]
    for n, user in enumerate(users):
        request_id = f"r{n}"
        client.publish(RankRequest(request_id=request_id, user_id=user, time=T0))
        client.publish(Impression(event_id=f"i{n}", request_id=request_id, user_id=user,
                                  shown=(ShownItem(item_id="a", position=0),), time=T0))
        client.publish(Click(event_id=f"c{n}", request_id=request_id, user_id=user, item_id="a", time=T0))
    client.flush(10)

    records = read_all(kafka_settings, [topics.requests, topics.impressions, topics.clicks], 3 * len(users))

    partitions: dict[str, set[int]] = {}
    for record in records:
        partitions.setdefault(record.key.decode(), set()).add(record.partition)
    assert len(records) == 3 * len(users)
    assert sorted(partitions) == sorted(users)
    for user, seen in partitions.items():
        # one partition per user across the three topics, the Java client's murmur2 choice
        assert seen == {(murmur2(user.encode()) & 0x7FFFFFFF) % kafka_settings.partitions}
    assert len(set.union(*partitions.values())) > 1  # keys spread over partitions


def test_await_slate_picks_its_own_among_interleaved_slates(
    topics: TopicNames, client: SlatestreamClient, worker: KafkaProducer
) -> None:
    client.publish(RankRequest(request_id="mine", user_id="u1", time=T0))
    client.flush(10)
    mine = slate_for("mine", "u1", item="right")
    for n in range(10):  # other requests' slates, same and other users, before and after
        worker.send(topics.slates, key=f"u{n % 3}".encode(), value=encode_event(slate_for(f"other-{n}", f"u{n % 3}")))
        if n == 5:
            worker.send(topics.slates, key=b"u1", value=encode_event(mine))
    worker.send(topics.slates, key=b"u1", value=b"not json at all")
    worker.flush(10)

    got = client.await_slate("mine", timeout_s=10)

    assert got == mine
    assert encode_event(got) == encode_event(mine)


def test_concurrent_awaits_share_one_consumer(
    topics: TopicNames, client: SlatestreamClient, worker: KafkaProducer, monkeypatch: pytest.MonkeyPatch
) -> None:
    created: list[KafkaConsumer] = []

    class CountingConsumer(KafkaConsumer):  # type: ignore[misc]
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            created.append(self)

    monkeypatch.setattr(streams.client, "KafkaConsumer", CountingConsumer)
    ids = [f"req-{n}" for n in range(6)]
    for n, request_id in enumerate(ids):
        client.publish(RankRequest(request_id=request_id, user_id=f"u{n}", time=T0))
    client.flush(10)
    results: dict[str, Slate | BaseException] = {}

    def wait(request_id: str) -> None:
        try:
            results[request_id] = client.await_slate(request_id, timeout_s=10)
        except BaseException as error:  # reported by the assertion below
            results[request_id] = error

    threads = [threading.Thread(target=wait, args=(request_id,)) for request_id in ids]
    for thread in threads:
        thread.start()
    for n, request_id in reversed(list(enumerate(ids))):
        worker.send(topics.slates, key=f"u{n}".encode(), value=encode_event(slate_for(request_id, f"u{n}")))
    worker.flush(10)
    for thread in threads:
        thread.join(15)

    assert {request_id: getattr(result, "request_id", result) for request_id, result in results.items()} == {
        request_id: request_id for request_id in ids
    }
    assert len(created) == 1


def test_slate_arriving_before_await_is_kept(
    topics: TopicNames, client: SlatestreamClient, worker: KafkaProducer
) -> None:
    client.publish(RankRequest(request_id="early", user_id="u9", time=T0))
    client.flush(10)
    worker.send(topics.slates, key=b"u9", value=encode_event(slate_for("early", "u9")))
    worker.flush(10)
    time.sleep(1.0)  # the slate consumer reads it before anyone awaits

    assert client.await_slate("early", timeout_s=5).request_id == "early"


def test_await_slate_times_out_naming_the_request_and_stays_usable(
    topics: TopicNames, client: SlatestreamClient, worker: KafkaProducer
) -> None:
    client.watch_slates()
    started = time.monotonic()

    with pytest.raises(TimeoutError, match="'never-answered'"):
        client.await_slate("never-answered", timeout_s=0.5)

    assert 0.5 <= time.monotonic() - started < 3.0
    client.publish(RankRequest(request_id="after", user_id="u1", time=T0))
    client.flush(10)
    worker.send(topics.slates, key=b"u1", value=encode_event(slate_for("never-answered", "u1")))
    worker.send(topics.slates, key=b"u1", value=encode_event(slate_for("after", "u1")))
    worker.flush(10)
    assert client.await_slate("after", timeout_s=10).request_id == "after"


def test_awaiting_without_the_slates_topic_says_so(kafka_settings: StreamSettings) -> None:
    with SlatestreamClient(kafka_settings) as client, pytest.raises(RuntimeError, match="ensure_topics"):
        client.await_slate("r", timeout_s=10)


def test_request_slate_round_trip(topics: TopicNames, client: SlatestreamClient, worker: KafkaProducer,
                                  kafka_settings: StreamSettings) -> None:
    """A fake worker thread answers every request it reads; request_slate gets the answer."""
    stop = threading.Event()
    consumer = KafkaConsumer(topics.requests, **kafka_settings.kafka_client_config(), group_id="fake-worker",
                             auto_offset_reset="earliest", session_timeout_ms=6000)

    def answer() -> None:
        while not stop.is_set():
            for batch in consumer.poll(timeout_ms=100).values():
                for record in batch:
                    request = decode_event(record.value)
                    assert isinstance(request, RankRequest)
                    answer = slate_for(request.request_id, request.user_id)
                    worker.send(topics.slates, key=record.key, value=encode_event(answer))
            worker.flush(5)

    thread = threading.Thread(target=answer)
    thread.start()
    try:
        slate = client.request_slate(RankRequest(request_id="rt-1", user_id="u5", time=T0), timeout_s=20)
    finally:
        stop.set()
        thread.join(10)
        consumer.close()

    assert (slate.request_id, slate.user_id) == ("rt-1", "u5")


def test_publishing_a_slate_is_refused(client: SlatestreamClient) -> None:
    with pytest.raises(TypeError, match="Slate"):
        client.publish(slate_for("x", "u1"))  # type: ignore[arg-type]
