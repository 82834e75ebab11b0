"""Fixtures for integration tests against a real Apache Kafka broker (deploy/kafka).

`kafka_broker` starts ONE broker per pytest session, lazily (only when a test asks for
it), on free ports with a temporary data dir, and stops it at the end of the session.
Set SLATESTREAM_TEST_BOOTSTRAP=host:port to use an already running broker instead.
Every test gets its own topic prefix, so tests never see each other's records.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from streams.settings import StreamSettings

BROKER_PY = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "broker.py"


def load_broker_module() -> ModuleType:
    """deploy/kafka/broker.py imported by path (deploy/ is not a package)."""
    name = "slatestream_kafka_broker"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BROKER_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def broker_module() -> ModuleType:
    return load_broker_module()


@pytest.fixture(scope="session")
def kafka_broker(broker_module: ModuleType) -> Iterator[str]:
    """Bootstrap "127.0.0.1:PORT" of a running single-node Kafka 4.x broker."""
    external = os.environ.get("SLATESTREAM_TEST_BOOTSTRAP")
    if external:
        yield external
        return
    with broker_module.KafkaBroker() as broker:
        yield broker.bootstrap


@pytest.fixture(scope="session")
def sasl_broker(broker_module: ModuleType) -> Iterator[object]:
    """A second broker, with a SASL_PLAINTEXT listener and ACLs (tests/integration/sasl_broker.py),
    started for the session the first time a test asks for it."""
    from tests.integration.sasl_broker import start_sasl_broker

    broker = start_sasl_broker(broker_module)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def topic_prefix() -> str:
    """A prefix no other test uses, e.g. "it-3f2a9c1b."."""
    return f"it-{uuid.uuid4().hex[:8]}."


@pytest.fixture
def kafka_settings(kafka_broker: str, topic_prefix: str) -> StreamSettings:
    """StreamSettings pointing at the session broker with this test's topic prefix."""
    return StreamSettings(
        broker_url=f"kafka://{kafka_broker}",
        topic_prefix=topic_prefix,
        partitions=4,
        replication_factor=1,
        broker_session_timeout_s=6.0,
    )
