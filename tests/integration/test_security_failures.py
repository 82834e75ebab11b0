"""Wrong credentials, missing ACLs and a wrong address are named as such within seconds, with the
setting to check, by the worker, the client and the commands (a real SASL broker: sasl_broker.py).
Before the broker check these were a 30 s "Unable to bootstrap" without a word of authentication."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from online.events import RankRequest
from slatestream.cli import main
from streams.client import SlatestreamClient
from streams.preflight import BrokerAuthenticationError, BrokerAuthorizationError, check_broker
from streams.settings import StreamSettings
from tests.integration.sasl_broker import MECHANISMS, READER_PASSWORD, SVC_PASSWORD

pytestmark = pytest.mark.kafka

NAMED_WITHIN_S = 5.0


def sasl_settings(broker: Any, mechanism: str, user: str, password: str) -> StreamSettings:
    return StreamSettings(broker_url=broker.sasl_url, security_protocol="SASL_PLAINTEXT",  # type: ignore[arg-type]
                          sasl_mechanism=mechanism, sasl_username=user, sasl_password=password,  # type: ignore[arg-type]
                          topic_prefix="sec.")


def sasl_env(broker: Any, mechanism: str, user: str, password: str, **extra: str) -> dict[str, str]:
    return {"SLATESTREAM_BROKER_URL": broker.sasl_url, "SLATESTREAM_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "SLATESTREAM_SASL_MECHANISM": mechanism, "SLATESTREAM_SASL_USERNAME": user,
            "SLATESTREAM_SASL_PASSWORD": password, "SLATESTREAM_TOPIC_PREFIX": "sec.", **extra}


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_the_right_credentials_pass_the_check(sasl_broker: Any, mechanism: str) -> None:
    found = check_broker(sasl_settings(sasl_broker, mechanism, "svc", SVC_PASSWORD), ["sec.requests"], "sec-group")
    assert found.brokers and found.missing_topics == ("sec.requests",)


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_a_wrong_password_is_named_by_the_client_within_seconds(sasl_broker: Any, mechanism: str) -> None:
    settings = sasl_settings(sasl_broker, mechanism, "svc", "not-the-password")
    began = time.monotonic()
    with SlatestreamClient(settings) as client, pytest.raises(BrokerAuthenticationError) as caught:
        client.request_slate(RankRequest(request_id="r", user_id="u"), timeout_s=20)
    took = time.monotonic() - began
    assert "authentication failed" in str(caught.value)
    assert "SLATESTREAM_SASL_USERNAME" in str(caught.value) and "SLATESTREAM_SASL_PASSWORD" in str(caught.value)
    assert "not-the-password" not in str(caught.value)
    assert took < NAMED_WITHIN_S, took
    with pytest.raises(BrokerAuthenticationError):  # on construction, when asked
        SlatestreamClient(settings, check=True)


def test_an_unauthorised_user_is_named_with_the_topics_and_the_group(sasl_broker: Any) -> None:
    settings = sasl_settings(sasl_broker, "PLAIN", "reader", READER_PASSWORD)
    with pytest.raises(BrokerAuthorizationError, match=r"user 'reader' is not authorised to describe topics"):
        check_broker(settings, ["sec.requests", "sec.slates"])
    with pytest.raises(BrokerAuthorizationError, match=r"consumer group 'sec-group'.*SLATESTREAM_APP_ID"):
        check_broker(settings, [], "sec-group")
    with SlatestreamClient(settings) as client, pytest.raises(BrokerAuthorizationError):
        client.publish(RankRequest(request_id="r", user_id="u"))


def test_the_worker_exits_naming_authentication_within_seconds(sasl_broker: Any, tmp_path: Path) -> None:
    env = {**os.environ, **sasl_env(sasl_broker, "SCRAM-SHA-256", "svc", "not-the-password",
                                    SLATESTREAM_STORE_DIR=str(tmp_path / "store"), SLATESTREAM_METRICS_PORT="0")}
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "slatestream", "worker", "--encoder", "hashing"],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    took = time.monotonic() - began  # a whole process: the interpreter and imports included
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Error: authentication failed" in done.stderr and "SLATESTREAM_SASL_PASSWORD" in done.stderr
    assert "Traceback" not in done.stderr and "not-the-password" not in done.stdout + done.stderr
    assert took < 20.0, took  # kafka-python's bootstrap alone took 30 s before the check


def test_the_worker_names_missing_rights(sasl_broker: Any, tmp_path: Path) -> None:
    env = {**os.environ, **sasl_env(sasl_broker, "PLAIN", "reader", READER_PASSWORD,
                                    SLATESTREAM_STORE_DIR=str(tmp_path / "store"), SLATESTREAM_METRICS_PORT="0")}
    done = subprocess.run([sys.executable, "-m", "slatestream", "worker", "--encoder", "hashing"],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1 and "is not authorised to describe topics" in done.stderr, done.stderr


@pytest.mark.parametrize("args", [["forget", "u1"], ["dead-letters", "list"], ["replay", "--since",
                                  "2026-01-01T00:00:00Z", "--until", "2026-01-02T00:00:00Z", "--out", "x.jsonl"]])
def test_commands_name_a_wrong_password_within_seconds(sasl_broker: Any, args: list[str]) -> None:
    began = time.monotonic()
    result = CliRunner().invoke(main, args, env=sasl_env(sasl_broker, "PLAIN", "svc", "not-the-password"))
    took = time.monotonic() - began
    assert result.exit_code == 1, result.output
    assert "authentication failed" in result.output and "SLATESTREAM_SASL_PASSWORD" in result.output
    assert took < NAMED_WITHIN_S, took


def test_commands_name_an_unreachable_broker() -> None:
    began = time.monotonic()
    result = CliRunner().invoke(main, ["forget", "u1"], env={"SLATESTREAM_BROKER_URL": "kafka://127.0.0.1:1"})
    assert result.exit_code == 1 and "no Kafka broker reachable" in result.output, result.output
    assert "SLATESTREAM_BROKER_URL" in result.output and time.monotonic() - began < NAMED_WITHIN_S
