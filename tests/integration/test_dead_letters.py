"""`slatestream dead-letters list | requeue` against the real broker."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from kafka import KafkaProducer

from online.events import EventDecodeError
from slatestream.cli import main
from streams.dead_letter import DeadLetter, encode_dead_letter
from streams.dead_letter_admin import REQUEUE_HEADER
from streams.settings import StreamSettings
from streams.topics import TopicNames, ensure_topics
from tests.integration.test_client import read_all

pytestmark = pytest.mark.kafka

T0 = datetime(2026, 5, 1, tzinfo=UTC)


def envelope(raw: bytes, topic: str, partition: int, offset: int, minutes: int, error: BaseException,
             keep: int = 65536) -> DeadLetter:
    return DeadLetter.from_error(raw, topic=topic, partition=partition, offset=offset, key=f"user-{offset}",
                                 error=error, time=T0 + timedelta(minutes=minutes), max_original_bytes=keep)


@pytest.fixture
def letters(kafka_settings: StreamSettings) -> list[DeadLetter]:
    """Four envelopes on the dead-letter topic (two partitions), as a worker would have written them."""
    ensure_topics(kafka_settings)
    names = TopicNames.from_settings(kafka_settings)
    made = [
        envelope(b'{"type": "click"}', names.clicks, 2, 40, 3, EventDecodeError("click.event_id", "Field required")),
        envelope(b"{not json", names.impressions, 1, 11, 1, EventDecodeError("<json>", "Invalid JSON")),
        envelope(b'{"type": "rank_request", "request_id": "r", "user_id": "u", "scenario": "nope"}',
                 names.requests, 3, 5, 2, KeyError("scenario 'nope' is not declared")),
        envelope(b"x" * 300, names.clicks, 0, 9, 4, EventDecodeError("<json>", "Invalid JSON"), keep=100),
    ]
    producer = KafkaProducer(**kafka_settings.kafka_client_config(), acks="all")
    for n, one in enumerate(made):
        producer.send(names.dead_letter, key=one.key.encode(), value=encode_dead_letter(one), partition=n % 2).get(30)
    producer.send(names.dead_letter, value=b"not an envelope", partition=0).get(30)
    producer.close()
    return made


def cli(settings: StreamSettings, *args: str) -> tuple[int, str, str]:
    env = {"SLATESTREAM_BROKER_URL": settings.broker_url, "SLATESTREAM_TOPIC_PREFIX": settings.topic_prefix,
           "SLATESTREAM_PARTITIONS": str(settings.partitions)}
    result = CliRunner().invoke(main, ["dead-letters", *args], env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_list_filters_and_orders(kafka_settings: StreamSettings, letters: list[DeadLetter]) -> None:
    code, out, err = cli(kafka_settings, "list", "--json")
    assert code == 0, err
    shown = [json.loads(line)["letter"] for line in out.splitlines()]
    assert [letter["time"] for letter in shown] == sorted(letter["time"] for letter in shown)
    assert {(x["source_topic"], x["offset"]) for x in shown} == {(x.source_topic, x.offset) for x in letters}
    assert "4 shown of 4 matching, 5 read" in err and "1 unreadable" in err

    def offsets(*args: str) -> list[int]:
        code, out, err = cli(kafka_settings, "list", "--json", *args)
        assert code == 0, err
        return [json.loads(line)["letter"]["offset"] for line in out.splitlines()]

    assert offsets("--topic", "clicks") == [40, 9]
    assert offsets("--error-type", "KeyError") == [5]
    assert offsets("--reason", "invalid json") == [11, 9]
    assert offsets("--since", "2026-05-01T00:02:00Z", "--until", "2026-05-01T00:04:00Z") == [5, 40]
    assert offsets("--limit", "2") == [11, 5]
    code, out, _ = cli(kafka_settings, "list", "--topic", "clicks", "--original")
    assert "b'{\"type\": \"click\"}'" in out and "300 bytes, truncated" in out
    assert "click.event_id: Field required" in out


def test_requeue_publishes_the_original_bytes_and_refuses_truncated(
        kafka_settings: StreamSettings, letters: list[DeadLetter]) -> None:
    names = TopicNames.from_settings(kafka_settings)
    code, _, err = cli(kafka_settings, "requeue")
    assert code == 2 and "give a filter" in err
    code, out, _ = cli(kafka_settings, "requeue", "--topic", "clicks", "--dry-run")
    assert code == 0 and out.count("would re-queue") == 2
    assert read_all(kafka_settings, [names.clicks], expected=1, timeout_s=2) == []  # a dry run sends nothing

    code, out, err = cli(kafka_settings, "requeue", "--topic", "clicks")
    assert code == 1, err  # one letter refused
    assert "refused" in out and "truncated: the envelope kept 100 of 300 bytes" in out
    assert "1 re-queued, 1 refused" in err
    records = read_all(kafka_settings, [names.clicks], expected=1)
    assert [(r.value, r.key, r.partition) for r in records] == [(b'{"type": "click"}', b"user-40", 2)]
    header = dict(records[0].headers)[REQUEUE_HEADER].decode()
    assert header.startswith(f"{names.dead_letter}/")

    code, out, err = cli(kafka_settings, "requeue", "--error-type", "KeyError")
    assert code == 0, err
    records = read_all(kafka_settings, [names.requests], expected=1)
    assert [(r.value, r.partition) for r in records] == [(letters[2].original_bytes(), 3)]
