"""StreamSettings and TopicNames (unit tests, no broker)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import faust
import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient
from pydantic import ValidationError

from streams.settings import StreamSettings, parse_broker_url
from streams.topics import TopicNames, topic_specs
from streams.worker.app import broker_credentials


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
                           "acme.dead-letter", "acme.catalog")
    assert names.for_event_type("rank_request") == "acme.requests"
    assert names.for_event_type("slate") == "acme.slates"
    with pytest.raises(ValueError, match="type"):
        names.for_event_type("nope")


def test_topic_specs_compact_only_the_item_topics() -> None:
    specs = topic_specs(StreamSettings(topic_prefix="x.", partitions=3))

    assert {name: spec["configs"] for name, spec in specs.items() if spec["configs"]} == {
        "x.items": {"cleanup.policy": "compact"}, "x.catalog": {"cleanup.policy": "compact"}}
    assert {spec["num_partitions"] for spec in specs.values()} == {3}


# --- security: credentials, SASL checks, mutual TLS --------------------------------------------


@pytest.mark.parametrize("url", ["kafka://bob:hunter2@k1:9092", "bob:hunter2@k1", "kafka://k0:1;kafka://bob:hunter2@k1",
                                 "kafka://bob:hunter2@k1:notaport", "k0:1,bob:hunter2@k1:9"])
def test_credentials_inside_the_broker_url_are_refused_without_echoing_them(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        StreamSettings(broker_url=url)
    monkeypatch.setenv("SLATESTREAM_BROKER_URL", url)
    with pytest.raises(ValidationError) as from_env:
        StreamSettings()

    for error in (caught.value, from_env.value):
        assert "credentials inside the URL are refused" in str(error)
        assert "hunter2" not in f"{error} {error!r} {error.errors(include_input=False)}"


def test_rejected_values_are_not_echoed_in_validation_errors() -> None:
    with pytest.raises(ValidationError) as caught:
        StreamSettings(partitions="hunter2")  # type: ignore[arg-type]

    assert "partitions" in str(caught.value) and "hunter2" not in str(caught.value)


def test_sasl_checks_are_real_checks_not_asserts() -> None:
    unchecked = StreamSettings.model_construct(security_protocol="SASL_SSL", broker_url="kafka://k:1",
                                               sasl_mechanism="PLAIN", sasl_username="svc")

    with pytest.raises(ValueError, match="sasl_password required"):
        unchecked.kafka_client_config()
    with pytest.raises(ValueError, match="sasl_password required"):
        broker_credentials(unchecked)


def _sasl(protocol: str, mechanism: str) -> StreamSettings:
    return StreamSettings(security_protocol=protocol, sasl_mechanism=mechanism,  # type: ignore[arg-type]
                          sasl_username="svc", sasl_password="hunter2")  # type: ignore[arg-type]


@pytest.mark.parametrize(("protocol", "mechanism", "warns"), [
    ("SASL_PLAINTEXT", "PLAIN", True), ("SASL_SSL", "PLAIN", False), ("SASL_PLAINTEXT", "SCRAM-SHA-512", False)])
def test_plain_over_a_cleartext_listener_logs_a_warning(
    caplog: pytest.LogCaptureFixture, protocol: str, mechanism: str, warns: bool
) -> None:
    with caplog.at_level(logging.WARNING, logger="streams.settings"):
        _sasl(protocol, mechanism)

    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert bool(warnings) == warns
    assert all("clear text" in line and "hunter2" not in line for line in warnings)


@pytest.fixture(scope="module")
def client_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for "localhost" and its private key, encrypted with "hunter2"."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert),
                    "-passout", "pass:hunter2"], check=True, capture_output=True, timeout=60)
    return cert, key


def _mtls(cert: Path, key: Path, password: str = "hunter2", protocol: str = "SSL") -> StreamSettings:
    return StreamSettings(security_protocol=protocol, ssl_cafile=cert, ssl_certfile=cert,  # type: ignore[arg-type]
                          ssl_keyfile=key, ssl_password=password,  # type: ignore[arg-type]
                          sasl_mechanism="SCRAM-SHA-256", sasl_username="svc", sasl_password="s")  # type: ignore[arg-type]


def test_client_certificate_options_reach_kafka_python(client_cert: tuple[Path, Path]) -> None:
    cert, key = client_cert

    settings = _mtls(cert, key)
    config = settings.kafka_client_config()

    assert (config["ssl_certfile"], config["ssl_keyfile"], config["ssl_password"]) == (str(cert), str(key), "hunter2")
    assert "hunter2" not in repr(settings)
    for client in (KafkaProducer, KafkaConsumer, KafkaAdminClient):
        assert set(config) - {"bootstrap_servers"} <= set(client.DEFAULT_CONFIG), client


@pytest.mark.parametrize(("changes", "message"), [
    ({"ssl_certfile": None}, "ssl_keyfile needs ssl_certfile"),
    ({"ssl_certfile": None, "ssl_keyfile": None}, "ssl_password needs ssl_certfile"),
    ({"security_protocol": "PLAINTEXT", "ssl_keyfile": None, "ssl_password": None}, "ssl_certfile needs"),
    ({"ssl_certfile": Path("/nonexistent/cert.pem")}, "is not a file"),
])
def test_client_certificate_options_are_checked(
    client_cert: tuple[Path, Path], changes: dict[str, object], message: str
) -> None:
    cert, key = client_cert
    values: dict[str, object] = {"security_protocol": "SSL", "ssl_certfile": cert, "ssl_keyfile": key,
                                 "ssl_password": "hunter2", **changes}

    with pytest.raises(ValidationError, match=message) as caught:
        StreamSettings(**values)  # type: ignore[arg-type]

    assert "hunter2" not in str(caught.value)


def test_a_wrong_key_password_is_named_without_showing_it(client_cert: tuple[Path, Path]) -> None:
    cert, key = client_cert

    with pytest.raises(ValueError, match="cannot load the client certificate") as caught:
        broker_credentials(_mtls(cert, key, password="wrong-hunter3"))

    assert "wrong-hunter3" not in str(caught.value)


def _handshake(server_context: ssl.SSLContext, client_context: ssl.SSLContext) -> dict[str, object]:
    """Connect `client_context` to a TLS server on 127.0.0.1; the server's view of the client
    certificate (empty when none), or ssl.SSLError when the server refuses the client."""
    seen: dict[str, object] = {}
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(10)

        def serve() -> None:
            conn, _ = listener.accept()
            try:
                with server_context.wrap_socket(conn, server_side=True) as tls:
                    seen["peer"] = tls.getpeercert()
                    tls.sendall(b"ok")
            except (ssl.SSLError, OSError) as error:
                seen["error"] = error
                conn.close()

        thread = threading.Thread(target=serve)
        thread.start()
        with socket.create_connection(listener.getsockname(), timeout=10) as raw, \
                client_context.wrap_socket(raw, server_hostname="localhost") as tls:
            with contextlib.suppress(ssl.SSLError, OSError):
                tls.recv(2)
        thread.join(10)
    return seen


@pytest.mark.parametrize("protocol", ["SSL", "SASL_SSL"])
def test_the_faust_tls_context_presents_the_client_certificate(client_cert: tuple[Path, Path], protocol: str) -> None:
    cert, key = client_cert
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key, "hunter2")
    server.verify_mode = ssl.CERT_REQUIRED
    server.load_verify_locations(cert)

    credentials = broker_credentials(_mtls(cert, key, protocol=protocol))
    context = credentials.ssl_context if isinstance(credentials, faust.SASLCredentials) else credentials.context
    without = broker_credentials(StreamSettings(security_protocol="SSL", ssl_cafile=cert))  # type: ignore[arg-type]

    assert _handshake(server, context)["peer"]["subject"] == (((("commonName", "localhost"),),))  # type: ignore[index]
    assert "error" in _handshake(server, without.context)  # type: ignore[union-attr]
