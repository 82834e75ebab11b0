"""StreamSettings and TopicNames (unit tests, no broker)."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from streams.settings import StreamSettings, parse_broker_url
from streams.topics import TopicNames, topic_specs


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("SLATESTREAM_")]:
        monkeypatch.delenv(name)

    settings = StreamSettings()

    assert settings.bootstrap_servers() == ["127.0.0.1:9092"]
    assert (settings.topic_prefix, settings.partitions, settings.replication_factor) == ("slatestream.", 4, 1)
    assert settings.attribution_window_s == 1800.0
    assert settings.kafka_client_config() == {"bootstrap_servers": ["127.0.0.1:9092"],
                                              "security_protocol": "PLAINTEXT"}


def test_environment_with_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLATESTREAM_BROKER_URL", "kafka://k1:9093;kafka://k2")
    monkeypatch.setenv("SLATESTREAM_PARTITIONS", "8")
    monkeypatch.setenv("SLATESTREAM_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("SLATESTREAM_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("SLATESTREAM_SASL_USERNAME", "svc")
    monkeypatch.setenv("SLATESTREAM_SASL_PASSWORD", "s3cret")

    settings = StreamSettings()

    assert settings.bootstrap_servers() == ["k1:9093", "k2:9092"]
    assert settings.partitions == 8
    assert "s3cret" not in repr(settings)
    config = settings.kafka_client_config()
    assert (config["sasl_mechanism"], config["sasl_plain_username"], config["sasl_plain_password"]) == (
        "SCRAM-SHA-512", "svc", "s3cret")


@pytest.mark.parametrize(
    ("url", "servers"),
    [
        ("kafka://a:1", ["a:1"]),
        ("a:1,b:2", ["a:1", "b:2"]),
        ("kafka://a;kafka://b:9", ["a:9092", "b:9"]),
        ("kafka://[::1]:9092", ["[::1]:9092"]),
    ],
)
def test_parse_broker_url(url: str, servers: list[str]) -> None:
    assert parse_broker_url(url) == servers


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"broker_url": "http://a:1"}, "broker_url"),
        ({"broker_url": "kafka://a:notaport"}, "broker_url"),
        ({"broker_url": " ; "}, "broker_url"),
        ({"topic_prefix": "bad prefix/"}, "topic_prefix"),
        ({"partitions": 0}, "partitions"),
        ({"broker_session_timeout_s": 1.0}, "broker_session_timeout_s"),
        ({"security_protocol": "SASL_PLAINTEXT"}, "sasl_mechanism"),
        ({"security_protocol": "TLS"}, "security_protocol"),
    ],
)
def test_invalid_settings_name_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        StreamSettings(**changes)  # type: ignore[arg-type]


def test_settings_are_frozen() -> None:
    settings = StreamSettings()

    with pytest.raises(ValidationError):
        settings.partitions = 2  # type: ignore[misc]


def test_topic_names_follow_the_prefix() -> None:
    names = TopicNames.from_prefix("acme.")

    assert names.all() == ("acme.requests", "acme.impressions", "acme.clicks", "acme.items", "acme.slates",
                           "acme.dead-letter")
    assert names.for_event_type("rank_request") == "acme.requests"
    assert names.for_event_type("slate") == "acme.slates"
    with pytest.raises(ValueError, match="type"):
        names.for_event_type("nope")


def test_topic_specs_compact_only_the_catalog() -> None:
    specs = topic_specs(StreamSettings(topic_prefix="x.", partitions=3))

    assert {name: spec["configs"] for name, spec in specs.items() if spec["configs"]} == {
        "x.items": {"cleanup.policy": "compact"}}
    assert {spec["num_partitions"] for spec in specs.values()} == {3}
