"""streams.preflight without a broker: an unreachable address, a port that is no Kafka listener, a
listener that never answers, each named within the timeout; the client honours its timeouts while
it cannot connect. (Against real SASL brokers: tests/integration/test_security_failures.py.)"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from online.events import RankRequest
from streams.client import SlatestreamClient
from streams.preflight import (
    BrokerAuthorizationError,
    BrokerProtocolError,
    BrokerTlsError,
    BrokerUnreachableError,
    _group_error,
    _topic_errors,
    check_broker,
)
from streams.settings import StreamSettings


def refused_port() -> int:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        return int(closed.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never answers (a stalled or non-Kafka listener)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    server.close()


@pytest.fixture
def closing_port() -> Iterator[int]:
    """A port that accepts TCP connections and closes them at once (another protocol's listener)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                server.accept()[0].close()
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join(2)
    server.close()


def settings_for(port: int, **extra: object) -> StreamSettings:
    return StreamSettings(broker_url=f"kafka://127.0.0.1:{port}", **extra)  # type: ignore[arg-type]


def test_an_unreachable_broker_names_the_url_setting_at_once() -> None:
    port = refused_port()
    began = time.monotonic()
    with pytest.raises(BrokerUnreachableError, match="SLATESTREAM_BROKER_URL") as caught:
        check_broker(settings_for(port))
    assert time.monotonic() - began < 2.0
    assert f"127.0.0.1:{port}" in str(caught.value)


def test_every_bootstrap_server_is_tried_and_each_failure_named() -> None:
    first, second = refused_port(), refused_port()
    settings = StreamSettings(broker_url=f"kafka://127.0.0.1:{first};kafka://127.0.0.1:{second}")
    with pytest.raises(BrokerUnreachableError) as caught:
        check_broker(settings)
    assert f"127.0.0.1:{first}: " in str(caught.value) and f"127.0.0.1:{second}: " in str(caught.value)


def test_a_listener_that_closes_the_connection_is_named_a_protocol_mismatch(closing_port: int) -> None:
    with pytest.raises(BrokerProtocolError, match="SLATESTREAM_SECURITY_PROTOCOL"):
        check_broker(settings_for(closing_port))


def test_a_listener_that_never_answers_is_named_within_the_timeout(silent_port: int) -> None:
    began = time.monotonic()
    with pytest.raises(BrokerProtocolError, match="did not complete the handshake in time"):
        check_broker(settings_for(silent_port), timeout_s=1.0)
    assert time.monotonic() - began < 2.5


def test_tls_to_a_listener_that_never_answers_is_a_tls_error(silent_port: int) -> None:
    with pytest.raises(BrokerTlsError, match="SLATESTREAM_SSL_CAFILE"):
        check_broker(settings_for(silent_port, security_protocol="SSL"), timeout_s=1.0)


def test_the_check_runs_from_inside_an_event_loop_too() -> None:
    async def inside() -> None:
        with pytest.raises(BrokerUnreachableError):
            check_broker(settings_for(refused_port()))

    asyncio.run(inside())


def test_denied_topics_and_groups_are_authorisation_errors_naming_the_principal() -> None:
    settings = StreamSettings(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-256", sasl_username="svc",
                              sasl_password="s")  # type: ignore[arg-type]
    with pytest.raises(BrokerAuthorizationError, match=r"user 'svc' .* topics \['a'\].*SLATESTREAM_TOPIC_PREFIX"):
        _topic_errors(settings, [("a", 29), ("b", 3), ("c", 0)])
    assert _topic_errors(settings, [("b", 3), ("c", 0)]) == ("b",)  # missing: reported, not an error
    with pytest.raises(BrokerAuthorizationError, match=r"consumer group 'g'.*SLATESTREAM_APP_ID"):
        _group_error(settings, "g", 30)
    _group_error(settings, "g", 15)  # coordinator not available yet: not an error


def test_the_client_constructor_never_blocks_and_request_slate_fails_named_at_once() -> None:
    began = time.monotonic()
    with SlatestreamClient(settings_for(refused_port())) as client:
        assert time.monotonic() - began < 1.0
        with pytest.raises(BrokerUnreachableError, match="SLATESTREAM_BROKER_URL"):
            client.request_slate(RankRequest(request_id="r", user_id="u"), timeout_s=2)
    assert time.monotonic() - began < 3.0


def test_request_slate_honours_its_timeout_while_it_cannot_connect(silent_port: int) -> None:
    with SlatestreamClient(settings_for(silent_port, preflight_timeout_s=20.0)) as client:
        began = time.monotonic()
        with pytest.raises(TimeoutError, match=r"could not connect to the broker .* within"):
            client.request_slate(RankRequest(request_id="r", user_id="u"), timeout_s=2)
        assert 1.9 < time.monotonic() - began < 3.0


def test_the_client_checks_the_broker_on_construction_when_asked(closing_port: int) -> None:
    with pytest.raises(BrokerProtocolError):
        SlatestreamClient(settings_for(closing_port), check=True)
