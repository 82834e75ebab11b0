"""deploy/kafka/broker.py: readiness probe, clear start-up errors, CLI lifecycle."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

pytestmark = pytest.mark.kafka

BROKER_PY = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "broker.py"


def test_session_broker_answers_a_metadata_request(kafka_broker: str, broker_module: ModuleType) -> None:
    host, port = kafka_broker.rsplit(":", 1)

    metadata = broker_module.metadata_request(host, int(port))

    assert metadata.brokers == ((1, "127.0.0.1", int(port)),)
    assert metadata.controller_id == 1 and metadata.cluster_id


def test_refuses_to_wipe_a_foreign_directory(tmp_path: Path, broker_module: ModuleType) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")

    with pytest.raises(broker_module.BrokerError, match="refusing"):
        broker_module.KafkaBroker(data_dir=tmp_path).start()

    assert precious.read_text() == "keep me"


def test_start_timeout_names_the_wait_and_cleans_up(broker_module: ModuleType) -> None:
    broker = broker_module.KafkaBroker(start_timeout_s=0.2)

    with pytest.raises(broker_module.BrokerError, match=r"did not answer a Metadata request within") as caught:
        broker.start()

    assert "server.log (tail)" in str(caught.value)
    assert broker.pid is None and broker.data_dir is not None and not broker.data_dir.exists()


@pytest.mark.slow
def test_broker_dies_with_the_process_that_started_it(broker_module: ModuleType) -> None:
    script = (
        "import importlib.util, sys, time\n"
        f"spec = importlib.util.spec_from_file_location('b', {str(BROKER_PY)!r})\n"
        "module = importlib.util.module_from_spec(spec); sys.modules['b'] = module\n"
        "spec.loader.exec_module(module)\n"
        "broker = module.KafkaBroker().start()\n"
        "print(broker.pid, broker.data_dir, flush=True)\n"
        "time.sleep(600)\n"
    )
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None
        pid_text, data_dir = owner.stdout.readline().split()
        pid = int(pid_text)
        assert broker_module.process_alive(pid)
    finally:
        owner.kill()  # SIGKILL: no cleanup code runs in the owner
        owner.wait()

    deadline = time.monotonic() + 60
    while broker_module.process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    shutil.rmtree(data_dir, ignore_errors=True)
    assert not broker_module.process_alive(pid)


@pytest.mark.slow
def test_port_in_use_fails_with_the_cause_and_log_tail(broker_module: ModuleType) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        broker = broker_module.KafkaBroker(controller_port=port, start_timeout_s=60)

        with pytest.raises(broker_module.BrokerError) as caught:
            broker.start()

    message = str(caught.value)
    assert "exited with code" in message and "server.log (tail)" in message
    errors = message.split("--- errors in", 1)[1].split("(tail) ---", 1)[0]
    assert "Address already in use" in errors
    assert broker.data_dir is not None and not broker.data_dir.exists()


@pytest.mark.slow
def test_cli_start_status_stop(tmp_path: Path, broker_module: ModuleType) -> None:
    directory = tmp_path / "broker"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, str(BROKER_PY), *args, "--dir", str(directory)]
        return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)

    started = cli("start", "--port", "0", "--controller-port", "0")
    assert started.returncode == 0, started.stderr
    state = broker_module.read_state(directory)
    pid = int(state["pid"])
    try:
        status = cli("status")
        assert status.returncode == 0 and f"127.0.0.1:{state['port']}" in status.stdout
        again = cli("start", "--port", "0", "--controller-port", "0")
        assert again.returncode == 2 and "running" in again.stderr
    finally:
        stopped = cli("stop")
    assert stopped.returncode == 0 and "SIGTERM" in stopped.stdout
    assert not directory.exists()
    assert not broker_module.process_alive(pid)
    assert cli("status").returncode == 1


def _write_record(bootstrap: str, topic: str, value: bytes) -> None:
    with KafkaAdminClient(bootstrap_servers=bootstrap) as admin:
        admin.create_topics([NewTopic(topic, 1, 1)])
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        producer.send(topic, key=b"k", value=value).get(timeout=30)
    finally:
        producer.close()


def _read_values(bootstrap: str, topic: str, count: int = 1, timeout_s: float = 60.0) -> list[bytes]:
    """The values of the topic's first `count` records (fewer if they do not come in time)."""
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                             enable_auto_commit=False)
    values: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(values) < count and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                values += [record.value for record in records]
        return values
    finally:
        consumer.close()


@pytest.mark.slow
def test_cli_start_keep_and_restart_after_kill_reuse_the_data(tmp_path: Path, broker_module: ModuleType) -> None:
    directory = tmp_path / "broker"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, str(BROKER_PY), *args, "--dir", str(directory)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    cli("start", "--port", "0", "--controller-port", "0")
    first = broker_module.read_state(directory)
    try:
        _write_record(first["bootstrap"], "kept", b"before the stop")
        cli("stop", "--keep")
        assert (directory / "data" / "meta.properties").is_file()

        started = cli("start", "--keep")
        assert "data kept" in started.stdout
        second = broker_module.read_state(directory)
        assert (second["port"], second["controller_port"], second["cluster_id"]) == (
            first["port"], first["controller_port"], first["cluster_id"])
        assert _read_values(second["bootstrap"], "kept") == [b"before the stop"]

        os.kill(int(second["pid"]), signal.SIGKILL)  # restart also brings back a broker killed by kill -9
        restarted = cli("restart")
        third = broker_module.read_state(directory)
        assert "data kept" in restarted.stdout and third["pid"] != second["pid"]
        assert third["cluster_id"] == first["cluster_id"]
        assert _read_values(third["bootstrap"], "kept") == [b"before the stop"]
    finally:
        subprocess.run([sys.executable, str(BROKER_PY), "stop", "--dir", str(directory)], capture_output=True,
                       timeout=120, check=False)
    assert not directory.exists()


@pytest.mark.slow
def test_restart_keeps_the_data_and_the_ports(tmp_path: Path, broker_module: ModuleType) -> None:
    broker = broker_module.KafkaBroker(data_dir=tmp_path / "broker", keep=True).start()
    try:
        assert not broker.reused  # nothing to keep yet: formatted as usual
        _write_record(broker.bootstrap, "survives", b"acked before the restart")
        before = (broker.port, broker.controller_port, broker.cluster_id)
        broker.restart()
        assert broker.reused and (broker.port, broker.controller_port, broker.cluster_id) == before
        assert _read_values(broker.bootstrap, "survives") == [b"acked before the restart"]
    finally:
        broker.stop()
    assert not (tmp_path / "broker").exists()
