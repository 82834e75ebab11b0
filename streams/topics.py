"""Topic names, their keys, and idempotent creation with kafka-python's admin client.

| attribute   | name (default prefix)     | key      | value                        |
|-------------|---------------------------|----------|------------------------------|
| requests    | slatestream.requests      | user id  | RankRequest JSON             |
| impressions | slatestream.impressions   | user id  | Impression JSON              |
| clicks      | slatestream.clicks        | user id  | Click JSON                   |
| slates      | slatestream.slates        | user id  | Slate JSON                   |
| items       | slatestream.items         | item id  | Item JSON (compacted topic)  |
| catalog     | slatestream.catalog       | item id  | the item and its vector (compacted; written by the worker) |
| dead_letter | slatestream.dead-letter   | src key  | DeadLetter JSON              |

Keys are UTF-8 bytes and partitioned by kafka-python/aiokafka's murmur2 default (the
same as Java clients), so requests, impressions, clicks and slates of one user share a
partition number as long as the topics have the same partition count (co-partitioning).
`ensure_topics` creates all seven with `settings.partitions` partitions and refuses topics
that exist with another count. The catalog topic is the worker's own: the worker that owns an
item's partition embeds it and writes its vector there, and every worker follows it
(`streams.worker.catalog`), so every worker knows every item.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kafka.admin import KafkaAdminClient
from kafka.errors import TopicAlreadyExistsError, for_code
from kafka.partitioner import murmur2

from streams.settings import StreamSettings


def partition_of(key: str | bytes, partitions: int) -> int:
    """The partition of a record keyed by `key` (a str as its UTF-8 bytes) among `partitions`:
    murmur2, as kafka-python's, aiokafka's and the Java clients' default partitioner."""
    return int((murmur2(key.encode() if isinstance(key, str) else key) & 0x7FFFFFFF) % partitions)


ITEMS_TOPIC_CONFIG: Mapping[str, str] = {"cleanup.policy": "compact"}
"""The catalog topic keeps the latest version of every item (a changelog of the catalog)."""


class TopicLayoutError(RuntimeError):
    """An existing topic does not have the partition count the settings ask for."""


@dataclass(frozen=True)
class TopicNames:
    """The seven topic names. Build with `TopicNames.from_prefix(...)` or `.from_settings(...)`."""

    requests: str
    impressions: str
    clicks: str
    items: str
    slates: str
    dead_letter: str
    catalog: str

    @classmethod
    def from_prefix(cls, prefix: str = "slatestream.") -> TopicNames:
        """Names "<prefix>requests", ..., "<prefix>dead-letter"."""
        return cls(
            requests=f"{prefix}requests",
            impressions=f"{prefix}impressions",
            clicks=f"{prefix}clicks",
            items=f"{prefix}items",
            slates=f"{prefix}slates",
            dead_letter=f"{prefix}dead-letter",
            catalog=f"{prefix}catalog",
        )

    @classmethod
    def from_settings(cls, settings: StreamSettings) -> TopicNames:
        """Names from `settings.topic_prefix`."""
        return cls.from_prefix(settings.topic_prefix)

    def all(self) -> tuple[str, ...]:
        """Every topic name, in declaration order."""
        return (self.requests, self.impressions, self.clicks, self.items, self.slates, self.dead_letter, self.catalog)

    def for_event_type(self, event_type: str) -> str:
        """The topic carrying events with this `type` tag ("rank_request", "slate", ...)."""
        topics = {
            "rank_request": self.requests,
            "impression": self.impressions,
            "click": self.clicks,
            "item": self.items,
            "slate": self.slates,
        }
        try:
            return topics[event_type]
        except KeyError:
            raise ValueError(f"type: no topic for event type {event_type!r}; known: {sorted(topics)}") from None


def topic_specs(settings: StreamSettings, names: TopicNames | None = None) -> dict[str, dict[str, Any]]:
    """{name: {num_partitions, replication_factor, configs}} as kafka-python's create_topics wants."""
    names = names or TopicNames.from_settings(settings)
    return {
        name: {
            "num_partitions": settings.partitions,
            "replication_factor": settings.replication_factor,
            "configs": dict(ITEMS_TOPIC_CONFIG) if name in (names.items, names.catalog) else {},
        }
        for name in names.all()
    }


def ensure_topics(
    settings: StreamSettings, names: TopicNames | None = None, *, timeout_s: float = 30.0
) -> dict[str, bool]:
    """Create the topics that do not exist yet and wait until every partition has a leader.

    Idempotent: an existing topic is left as it is. Returns {name: True if created now}.
    Raises TopicLayoutError when an existing topic has a partition count other than
    `settings.partitions` (it would break co-partitioning by user id), and kafka-python's
    error for any other failure (e.g. replication_factor above the broker count).
    """
    return create_topics(settings, topic_specs(settings, names), timeout_s=timeout_s)


def create_topics(settings: StreamSettings, specs: Mapping[str, Mapping[str, Any]], *,
                  timeout_s: float = 30.0) -> dict[str, bool]:
    """Create the topics of `specs` ({name: {num_partitions, replication_factor, configs}}) that
    do not exist yet, wait until every partition has a leader and check each partition count.

    Returns {name: True if created now}; TopicLayoutError when an existing topic has another
    partition count than its spec.
    """
    timeout_ms = int(timeout_s * 1000)
    created: dict[str, bool] = {}
    with KafkaAdminClient(**settings.kafka_client_config(), client_id=f"{settings.app_id}-admin") as admin:
        result = admin.create_topics({name: dict(spec) for name, spec in specs.items()}, timeout_ms=timeout_ms,
                                     raise_errors=False)
        for topic in result["topics"]:
            name, code = topic["name"], topic["error_code"]
            if code == 0:
                created[name] = True
            elif code == TopicAlreadyExistsError.errno:
                created[name] = False
            else:
                error = for_code(code)
                raise error(f"creating topic {name}: {topic.get('error_message') or error.__name__}")
        admin.wait_for_topics(list(specs), timeout_ms=timeout_ms)
        described = admin.describe_topics(list(specs))
    wrong = {
        str(topic["name"]): len(topic["partitions"])
        for topic in described
        if len(topic["partitions"]) != specs[topic["name"]]["num_partitions"]
    }
    if wrong:
        raise TopicLayoutError(
            f"partitions: topics {wrong} exist with a partition count other than their spec "
            f"({ {name: spec['num_partitions'] for name, spec in specs.items() if name in wrong} }); "
            "co-partitioning by user id needs the same count everywhere (recreate them or change partitions)"
        )
    return {name: created[name] for name in specs}
