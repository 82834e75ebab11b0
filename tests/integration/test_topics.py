"""Topic creation against the real broker: idempotent, co-partitioned, items compacted."""

from __future__ import annotations

import pytest
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from streams.settings import StreamSettings
from streams.topics import TopicLayoutError, TopicNames, ensure_topics

pytestmark = pytest.mark.kafka


def test_ensure_topics_creates_all_then_is_idempotent(kafka_settings: StreamSettings) -> None:
    names = TopicNames.from_settings(kafka_settings)

    first = ensure_topics(kafka_settings)
    second = ensure_topics(kafka_settings)

    assert first == dict.fromkeys(names.all(), True)
    assert second == dict.fromkeys(names.all(), False)
    with KafkaAdminClient(**kafka_settings.kafka_client_config()) as admin:
        described = {topic["name"]: topic for topic in admin.describe_topics(list(names.all()))}
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, names.items)])
    assert sorted(described) == sorted(names.all())
    assert all(len(topic["partitions"]) == kafka_settings.partitions for topic in described.values())
    assert configs["topic"][names.items]["cleanup.policy"]["value"] == "compact"


def test_existing_topic_with_other_partition_count_is_refused(kafka_settings: StreamSettings) -> None:
    ensure_topics(kafka_settings)
    fewer = kafka_settings.model_copy(update={"partitions": 2})

    with pytest.raises(TopicLayoutError, match="partitions"):
        ensure_topics(fewer)


def test_other_prefix_gives_other_topics(kafka_settings: StreamSettings) -> None:
    other = kafka_settings.model_copy(update={"topic_prefix": kafka_settings.topic_prefix + "b."})

    created = ensure_topics(other)

    assert all(created.values())
    assert all(name.startswith(kafka_settings.topic_prefix + "b.") for name in created)
