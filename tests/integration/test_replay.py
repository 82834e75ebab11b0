"""`slatestream replay`: the pure ordering and catalog functions, then a real broker.

The broker tests publish with a raw KafkaProducer and explicit `timestamp_ms`, because
replay selects records by their Kafka timestamp (the send time when the producer sets
none, as `SlatestreamClient.publish` does); explicit timestamps make the range exact.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from kafka import KafkaProducer

from online.datasets import read_events
from online.events import (
    Click,
    EventDecodeError,
    Impression,
    Item,
    RankRequest,
    ShownItem,
    Slate,
    SlateItem,
    encode_event,
)
from slatestream.replay import replay_command
from streams.client import SlatestreamClient, event_key
from streams.replay import (
    ItemVersion,
    ReplayRecord,
    decode_record,
    latest_items,
    order_records,
    parse_time,
    replay,
    to_epoch_ms,
)
from streams.settings import StreamSettings
from streams.topics import TopicNames, ensure_topics

T0 = datetime(2026, 1, 1, tzinfo=UTC)
AnyEvent = RankRequest | Slate | Impression | Click | Item


def request(n: int, at: datetime, user: str = "u1") -> RankRequest:
    return RankRequest(request_id=f"r{n}", user_id=user, time=at)


def slate(n: int, at: datetime, user: str = "u1") -> Slate:
    return Slate(request_id=f"r{n}", user_id=user, scenario="default", policy="linear_ts", policy_version="v1",
                 items=(SlateItem(item_id="a", position=0, score=0.5, mean=0.4, std=0.1, explored=False,
                                  propensity=0.5),), time=at)


def impression(n: int, at: datetime, user: str = "u1") -> Impression:
    return Impression(event_id=f"i{n}", request_id=f"r{n}", user_id=user,
                      shown=(ShownItem(item_id="a", position=0, propensity=0.5),), time=at)


def click(n: int, at: datetime, user: str = "u1", suffix: str = "") -> Click:
    return Click(event_id=f"c{n}{suffix}", request_id=f"r{n}", user_id=user, item_id="a", time=at)


def item(item_id: str, title: str, at: datetime = T0) -> Item:
    return Item(item_id=item_id, fields={"title": title}, time=at)


# --- pure functions (no broker) ---------------------------------------------------------------


def test_order_is_event_time_then_topic_rank_then_partition_then_offset_whatever_the_input_order() -> None:
    t1 = T0 + timedelta(seconds=1)
    expected = [
        ReplayRecord("requests", 3, 9, request(1, T0)),
        ReplayRecord("slates", 0, 0, slate(1, T0)),
        ReplayRecord("impressions", 1, 5, impression(1, T0)),
        ReplayRecord("clicks", 1, 7, click(1, T0)),
        ReplayRecord("requests", 0, 4, request(2, t1, "u2")),  # equal time and topic: lower partition first
        ReplayRecord("requests", 2, 1, request(3, t1, "u3")),
        ReplayRecord("clicks", 2, 3, click(3, t1, "u3", "a")),  # equal time, topic, partition: offset
        ReplayRecord("clicks", 2, 8, click(3, t1, "u3", "b")),
    ]
    for permutation in itertools.islice(itertools.permutations(expected), 0, 40320, 97):
        assert order_records(permutation) == expected
    assert order_records(reversed(expected)) == expected


def test_order_rejects_item_records() -> None:
    with pytest.raises(ValueError, match="topic"):
        order_records([ReplayRecord("items", 0, 0, item("a", "A"))])


def test_latest_items_offset_within_a_partition_timestamp_across_and_tombstones_delete() -> None:
    versions = [
        ItemVersion("a", 0, 5, 2_000, item("a", "A2")),
        ItemVersion("a", 0, 1, 9_000, item("a", "A1")),  # older offset, later clock: offset wins
        ItemVersion("b", 1, 0, 1_000, item("b", "B1")),
        ItemVersion("b", 1, 3, 3_000, None),  # tombstone
        ItemVersion("c", 2, 0, 1_000, item("c", "C-old-partition")),
        ItemVersion("c", 3, 0, 4_000, item("c", "C-re-keyed")),  # other partition: later timestamp wins
        ItemVersion("0", 1, 7, 1_000, item("0", "Zero")),
    ]
    for permutation in itertools.islice(itertools.permutations(versions), 0, 5040, 37):
        got = latest_items(permutation)
        assert [(i.item_id, i.fields["title"]) for i in got] == [("0", "Zero"), ("a", "A2"), ("c", "C-re-keyed")]


def test_decode_record_names_the_field_of_each_rejection() -> None:
    assert decode_record("clicks", encode_event(click(1, T0))) == click(1, T0)
    with pytest.raises(EventDecodeError) as wrong_type:
        decode_record("clicks", encode_event(impression(1, T0)))
    assert wrong_type.value.field == "type"
    with pytest.raises(EventDecodeError) as garbage:
        decode_record("requests", b"not json")
    assert garbage.value.field == "<json>"
    with pytest.raises(EventDecodeError) as null:
        decode_record("slates", None)
    assert null.value.field == "<value>"


def test_parse_time_wants_a_timezone_and_bounds_round_up_to_whole_milliseconds() -> None:
    assert parse_time("2026-01-01T01:00:00+01:00") == T0
    assert parse_time("2026-01-01T00:00:00Z") == T0
    with pytest.raises(ValueError, match=r"--since.*timezone"):
        parse_time("2026-01-01T00:00:00", "--since")
    with pytest.raises(ValueError, match="ISO-8601"):
        parse_time("yesterday")
    assert to_epoch_ms(T0) == 1_767_225_600_000
    assert to_epoch_ms(T0 + timedelta(microseconds=1)) == 1_767_225_600_001


def test_replay_refuses_an_empty_range_or_unknown_topics(tmp_path: Path) -> None:
    settings = StreamSettings(broker_url="kafka://127.0.0.1:1")  # never contacted
    with pytest.raises(ValueError, match="since"):
        replay(settings, T0, T0, tmp_path / "out.jsonl")
    with pytest.raises(ValueError, match="topics"):
        replay(settings, T0, T0 + timedelta(hours=1), tmp_path / "out.jsonl", ["requests", "dead_letter"])
    assert not (tmp_path / "out.jsonl").exists()


# --- against the real broker ------------------------------------------------------------------


@pytest.fixture
def topics(kafka_settings: StreamSettings) -> TopicNames:
    ensure_topics(kafka_settings)
    return TopicNames.from_settings(kafka_settings)


@pytest.fixture
def producer(kafka_settings: StreamSettings) -> Iterator[KafkaProducer]:
    producer = KafkaProducer(**kafka_settings.kafka_client_config(), acks="all")
    yield producer
    producer.close()


EVENT_TYPES = ("rank_request", "slate", "impression", "click")


@pytest.mark.kafka
def test_replay_of_a_sub_range_returns_exactly_the_events_sent_in_it_in_order(
    kafka_settings: StreamSettings, topics: TopicNames, producer: KafkaProducer, tmp_path: Path
) -> None:
    # A whole minute an hour ago: within retention and the broker's timestamp limits.
    base = datetime.fromtimestamp((int(time.time()) // 60 - 60) * 60, UTC)

    def at(seconds: float) -> datetime:
        return base + timedelta(seconds=seconds)

    # The true order, as (event, Kafka timestamp): rounds every 10 s; a round's request, slate
    # and impression share one time (ties broken by topic rank), clicks follow.
    stream: list[tuple[AnyEvent, datetime]] = []
    for n in range(8):
        user, start = f"u{n % 5}", at(10 * n)
        stream += [(request(n, start, user), start), (slate(n, start, user), start),
                   (impression(n, start, user), start)]
        if n == 1:  # a click of round 1 (event time 15 s) that was sent late, at 30 s
            stream.append((click(n, at(15), user, "-late"), at(30)))
        if n % 2 == 0:
            stream.append((click(n, at(10 * n + 3), user), at(10 * n + 3)))
        if n == 3:  # a click of round 3 sent early (clock skew), after the range: left out
            stream.append((click(n, at(34), user, "-early"), at(65)))
    since, until = at(20), at(60)  # round 2 starts exactly at since (in), round 6 at until (out)
    expected = [event for event, sent in stream if since <= sent < until]

    # Undecodable records, and a catalog where a is updated in and after the range, b deleted
    # and c only created after it: (topic, key, value, sent).
    raw: list[tuple[str, bytes, bytes | None, datetime]] = [
        (topics.clicks, b"u0", b"garbage before the range", at(5)),
        (topics.clicks, b"u0", b"not json", at(25)),
        (topics.clicks, b"u0", encode_event(impression(50, at(30))), at(30)),
        (topics.requests, b"u0", b"{}", at(35)),
        (topics.items, b"a", encode_event(item("a", "A1")), at(0)),
        (topics.items, b"b", encode_event(item("b", "B1")), at(5)),
        (topics.items, b"bad", b"[]", at(10)),
        (topics.items, b"b", None, at(30)),
        (topics.items, b"a", encode_event(item("a", "A2")), at(40)),
        (topics.items, b"d", encode_event(item("d", "D1")), at(50)),
        (topics.items, b"c", encode_event(item("c", "C1")), at(65)),
        (topics.items, b"a", encode_event(item("a", "A3")), at(70)),
    ]
    raw += [(topics.for_event_type(e.type), event_key(e), encode_event(e), sent) for e, sent in stream]
    # Publish in Kafka-timestamp order (as a producer stamping send times would), equal
    # timestamps in reverse topic rank, so that neither arrival order nor offsets give the
    # replay order.
    rank = {getattr(topics, name): -position for position, name in enumerate(
        ["requests", "slates", "impressions", "clicks", "items"])}
    for topic, key, value, sent in sorted(raw, key=lambda send: (send[3], rank[send[0]])):
        producer.send(topic, key=key, value=value, timestamp_ms=to_epoch_ms(sent))
        if topic == topics.requests and value == encode_event(request(2, at(20), "u2")):
            # sent right after round 2's request, on its partition, stamped before the range
            skewed = request(99, at(15), "u2")
            producer.send(topic, key=key, value=encode_event(skewed), timestamp_ms=to_epoch_ms(at(15)))
    producer.flush(10)

    out = tmp_path / "replay" / "range.jsonl.gz"
    result = replay(kafka_settings, since, until, out)

    events = list(read_events(out))
    assert events == [item("a", "A2"), item("d", "D1"), *expected]
    assert [event.event_id for event in expected if isinstance(event, Click)] == ["c1-late", "c2", "c4"]
    assert result.written == len(events)
    counts = result.counts
    by_type = {kind: sum(1 for e in expected if e.type == kind) for kind in EVENT_TYPES}
    assert (counts["requests"].written, counts["slates"].written) == (by_type["rank_request"], by_type["slate"])
    assert (counts["impressions"].written, counts["clicks"].written) == (by_type["impression"], by_type["click"])
    assert (counts["requests"].undecodable, counts["clicks"].undecodable) == (1, 2)
    assert counts["requests"].out_of_range == 1  # the skewed request, read but stamped before since
    assert counts["requests"].read == by_type["rank_request"] + 2
    assert (counts["items"].written, counts["items"].undecodable, counts["items"].tombstones) == (2, 1, 1)
    assert counts["items"].superseded == 2  # A1, B1
    assert sorted((bad.topic, bad.field) for bad in result.undecodable) == [
        ("clicks", "<json>"), ("clicks", "type"), ("items", "<event>"), ("requests", "type")
    ]

    only_clicks = replay(kafka_settings, since, until, tmp_path / "clicks.jsonl", ["clicks"])
    assert list(read_events(only_clicks.path)) == [e for e in expected if isinstance(e, Click)]
    assert set(only_clicks.counts) == {"clicks"}


@pytest.mark.kafka
def test_cli_replays_what_the_client_published_by_send_time_ordered_by_event_time(
    kafka_settings: StreamSettings, topics: TopicNames, tmp_path: Path
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    # Event times are fixed in the past; the client stamps the records with the send time.
    published: list[RankRequest | Impression | Click | Item] = [
        click(1, T0 + timedelta(seconds=2)), impression(1, T0), request(1, T0), item("a", "A1"),
    ]
    with SlatestreamClient(kafka_settings) as client:
        for event in published:
            client.publish(event)
        client.flush(10)
    until = datetime.now(UTC) + timedelta(seconds=1)
    out = tmp_path / "client.jsonl"

    runner = CliRunner()
    env = {"SLATESTREAM_BROKER_URL": kafka_settings.broker_url, "SLATESTREAM_TOPIC_PREFIX": kafka_settings.topic_prefix}
    outcome = runner.invoke(replay_command, ["--since", since.isoformat(), "--until", until.isoformat(),
                                             "--out", str(out), "--topics", "requests,clicks,impressions,items"],
                            env=env)

    assert outcome.exit_code == 0, outcome.output
    assert list(read_events(out)) == [item("a", "A1"), request(1, T0), impression(1, T0),
                                      click(1, T0 + timedelta(seconds=2))]
    assert "clicks: 1 written, 1 read, 0 out of range, 0 undecodable" in outcome.output
    assert "total: 4 events" in outcome.output
    assert "slates" not in outcome.output

    before = runner.invoke(replay_command, ["--since", (since - timedelta(hours=1)).isoformat(),
                                            "--until", since.isoformat(), "--out", str(out)], env=env)
    assert before.exit_code == 0, before.output
    assert list(read_events(out)) == []
    naive = runner.invoke(replay_command, ["--since", "2026-01-01T00:00:00", "--until", until.isoformat(),
                                           "--out", str(out)], env=env)
    assert naive.exit_code == 2 and "timezone" in naive.output
