"""The broker check a worker runs before anything else (light to import: no Faust, no encoder)."""

from __future__ import annotations

from streams.control import control_topic
from streams.preflight import BrokerCheck, check_broker
from streams.settings import StreamSettings
from streams.state_changelog import state_changelog_topic, worker_app_id
from streams.topics import TopicNames


def preflight(settings: StreamSettings) -> BrokerCheck:
    """Check the broker as a worker uses it (streams.preflight: reachable, authenticated, allowed
    to use its topics and consumer group) within settings.preflight_timeout_s; raises the
    BrokerCheckError that names the cause and the settings to check."""
    topics = [*TopicNames.from_settings(settings).all(), control_topic(settings), state_changelog_topic(settings)]
    return check_broker(settings, topics, group=worker_app_id(settings))
