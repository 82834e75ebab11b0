"""A real single-node Apache Kafka 4.x broker (KRaft combined mode) from Maven Central jars.

Standard library only. Two ways to use it:

    python deploy/kafka/broker.py start [--port 9092] [--controller-port 9093] [--dir DIR] [--keep]
    python deploy/kafka/broker.py status [--dir DIR]
    python deploy/kafka/broker.py stop [--dir DIR] [--keep]
    python deploy/kafka/broker.py restart [--dir DIR]      # stop, then start on the same data and ports

    with KafkaBroker() as broker:          # free ports, fresh temporary data dir
        use(broker.bootstrap)              # "127.0.0.1:PORT"

`start()` resolves the jars once (`mvn dependency:copy-dependencies` into
deploy/kafka/.cache/jars, reused while pom.xml is unchanged), formats a fresh data dir with
`kafka.tools.StorageTool`, launches `java -Xmx512m ... kafka.Kafka server.properties` bound
to 127.0.0.1 and returns once the broker answers a Metadata request listing itself.
`stop()` sends SIGTERM (controlled shutdown), SIGKILL after `stop_timeout_s`, and removes
the data dir. With `keep=True` (`--keep`) `start()` reuses a data dir a broker has already
formatted (topics, records, offsets and KRaft metadata kept; its cluster id read back) and
`stop(keep_data=True)` leaves it in place; `restart()` does both on the same ports. Needs
`java` (17+, or $JAVA_HOME/bin/java) and, for the first run, `mvn`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

sys.path.insert(0, str(Path(__file__).resolve().parent))  # broker_support beside this file, also when loaded by path
from broker_support import (
    HERE,
    HOST,
    JARS_DIR,
    BrokerError,
    ClusterMetadata,
    _die_with_parent,
    _errors,
    _random_cluster_id,
    _tail,
    cluster_id_of,
    ensure_jars,
    formatted,
    free_port,
    java_executable,
    metadata_request,
    process_alive,
    terminate,
)

__all__ = ["JARS_DIR", "BrokerError", "ClusterMetadata", "KafkaBroker", "ensure_jars", "free_port",
           "metadata_request", "process_alive", "read_state", "terminate"]

DEFAULT_CLI_DIR = HERE.parent.parent / ".data" / "kafka"
TOOL_JVM_OPTIONS = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")
"""Short-lived StorageTool run: C1 only and the serial GC start faster (~1.5 s saved)."""
BROKER_JVM_OPTIONS: tuple[str, ...] = ()
MARKER = ".slatestream-kafka"
STATE_FILE = "broker.json"

LOG4J2 = """status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = INFO
"""


class KafkaBroker:
    """A single-node Kafka broker+controller on 127.0.0.1; a context manager.

    Args:
        port: client (PLAINTEXT) port; None picks a free one.
        controller_port: KRaft controller port; None picks a free one.
        data_dir: working dir (data, logs, config); None makes a temporary one. It must be
            missing, empty, or a previous broker dir (holding the marker file); it is wiped.
        heap: JVM -Xmx value.
        start_timeout_s: seconds to wait for the first Metadata answer.
        stop_timeout_s: seconds between SIGTERM and SIGKILL.
        properties: extra/overriding server.properties entries.
        detach: keep running after this Python process exits (used by the CLI `start`);
            otherwise the JVM gets SIGTERM when the starting thread dies (Linux).
        jars_dir: where the classpath is copied (default deploy/kafka/.cache/jars).
        jvm_options: extra JVM flags for the broker (the heap comes from `heap`).
        keep: reuse `data_dir` when a broker has formatted it before (its data and KRaft
            metadata kept), instead of wiping and formatting it; a dir without broker data
            is formatted as usual.
    """

    def __init__(
        self,
        port: int | None = None,
        controller_port: int | None = None,
        data_dir: str | Path | None = None,
        *,
        heap: str = "512m",
        start_timeout_s: float = 120.0,
        stop_timeout_s: float = 30.0,
        properties: Mapping[str, str] | None = None,
        detach: bool = False,
        jars_dir: Path = JARS_DIR,
        jvm_options: Sequence[str] = BROKER_JVM_OPTIONS,
        keep: bool = False,
    ) -> None:
        self._fixed_ports = port is not None or controller_port is not None
        self.port = port or 0
        self.controller_port = controller_port or 0
        self._requested_port, self._requested_controller = port, controller_port
        self._temporary = data_dir is None
        self.data_dir = Path(data_dir).resolve() if data_dir is not None else None
        self.heap = heap
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.properties = dict(properties or {})
        self.detach = detach
        self.jars_dir = jars_dir
        self.jvm_options = tuple(jvm_options)
        self.keep = keep
        self.reused = False
        """Whether the last start() reused formatted data (else it formatted a fresh dir)."""
        self.cluster_id = ""
        self.pid: int | None = None
        self.started_in_s: float | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """"127.0.0.1:PORT", for kafka-python's bootstrap_servers."""
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        """"kafka://127.0.0.1:PORT", for StreamSettings.broker_url / Faust."""
        return f"kafka://{self.bootstrap}"

    @property
    def server_log(self) -> Path:
        assert self.data_dir is not None
        return self.data_dir / "logs" / "server.log"

    def server_properties(self) -> dict[str, str]:
        """The server.properties entries this broker is started with."""
        assert self.data_dir is not None
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{HOST}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir / "data"),
            "num.network.threads": "2",
            "num.io.threads": "4",
            "offsets.topic.num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # topics are created explicitly (streams.topics.ensure_topics, Faust declares its
            # own); an auto-created 1-partition topic would silently break co-partitioning
            "auto.create.topics.enable": "false",
            "log.cleaner.dedupe.buffer.size": str(32 * 1024 * 1024),
        }
        props.update(self.properties)
        return props

    # -------------------------------------------------------------- lifecycle

    def start(self) -> KafkaBroker:
        """Format a fresh data dir (or, with `keep`, reuse a formatted one), launch the JVM,
        wait for a Metadata answer."""
        if self._process is not None:
            raise BrokerError(f"broker already started on {self.bootstrap}")
        began = time.monotonic()
        jars = ensure_jars(self.jars_dir)
        attempts = 1 if self._fixed_ports else 3
        for attempt in range(attempts):
            self.port = self._requested_port or free_port()
            self.controller_port = self._requested_controller or free_port()
            while self.controller_port == self.port:
                self.controller_port = free_port()
            directory = self._prepare_dir()  # its errors leave everything as it was
            try:
                self._launch(jars, directory)
                self._wait_ready()
            except BrokerError as error:
                in_use = "Address already in use" in str(error)
                self._kill_and_clean()
                if in_use and attempt + 1 < attempts:
                    continue
                raise
            break
        self.started_in_s = time.monotonic() - began
        self._write_state()
        return self

    def stop(self, keep_data: bool = False) -> None:
        """SIGTERM, SIGKILL after stop_timeout_s, then remove the data dir unless `keep_data`.
        Idempotent."""
        if self.pid is not None:
            terminate(self.pid, self.stop_timeout_s, self._process)
        self._process, self.pid = None, None
        if not keep_data:
            self._remove_dir()

    def restart(self) -> KafkaBroker:
        """Stop (keeping the data dir), then start again on the same data and ports."""
        self.stop(keep_data=True)
        self.keep, self._fixed_ports = True, True
        self._requested_port, self._requested_controller = self.port, self.controller_port
        return self.start()

    def __enter__(self) -> KafkaBroker:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    # ---------------------------------------------------------------- helpers

    def _prepare_dir(self) -> Path:
        self.reused = False
        if self.keep and self.data_dir is not None and formatted(self.data_dir):
            self._check_not_running(self.data_dir)
            self.reused = True
            return self.data_dir
        if self.data_dir is None or self._temporary:
            self.data_dir = Path(tempfile.mkdtemp(prefix="slatestream-kafka-"))
            self._temporary = True
        elif self.data_dir.exists() and any(self.data_dir.iterdir()):
            if not (self.data_dir / MARKER).exists():
                raise BrokerError(f"{self.data_dir} is not empty and not a broker dir; refusing to wipe it")
            self._check_not_running(self.data_dir)
            shutil.rmtree(self.data_dir)
        directory = self.data_dir
        (directory / "logs").mkdir(parents=True, exist_ok=True)
        (directory / MARKER).write_text("data dir of deploy/kafka/broker.py; wiped on start and stop (unless --keep)\n")
        return directory

    @staticmethod
    def _check_not_running(directory: Path) -> None:
        state = read_state(directory)
        if state and process_alive(int(str(state["pid"]))):
            raise BrokerError(f"a broker (pid {state['pid']}) is running in {directory}; stop it first")

    def _launch(self, jars: Path, directory: Path) -> None:
        self.cluster_id = cluster_id_of(directory) if self.reused else _random_cluster_id()
        config = directory / "server.properties"
        config.write_text("".join(f"{key}={value}\n" for key, value in self.server_properties().items()))
        log4j = directory / "log4j2.properties"
        log4j.write_text(LOG4J2.format(log=self.server_log))
        java = java_executable()
        common = [f"-Dlog4j2.configurationFile={log4j}", "-Djava.awt.headless=true", "-cp", f"{jars}/*"]
        format_cmd = [java, *TOOL_JVM_OPTIONS, *common, "kafka.tools.StorageTool", "format", "--standalone"]
        format_cmd += ["-t", self.cluster_id, "-c", str(config)]
        result = None if self.reused else subprocess.run(format_cmd, capture_output=True, text=True, check=False)  # noqa: S603
        if result is not None and result.returncode != 0:
            raise BrokerError(f"StorageTool format failed ({result.returncode}):\n{result.stdout}{result.stderr}")
        command = [java, f"-Xmx{self.heap}", *self.jvm_options, *common, "kafka.Kafka", str(config)]
        with open(directory / "logs" / "stdout.log", "wb") as out:
            self._process = subprocess.Popen(  # noqa: S603
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=directory,
                start_new_session=self.detach,
                preexec_fn=None if self.detach or sys.platform != "linux" else _die_with_parent,
            )
        self.pid = self._process.pid

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout_s
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                raise BrokerError(f"the broker exited with code {code} during start-up\n{self._log_tails()}")
            try:
                metadata = metadata_request(HOST, self.port, timeout_s=2.0)
                if any(node_port == self.port for _, _, node_port in metadata.brokers):
                    return
            except (OSError, BrokerError) as error:
                last_error = error
            time.sleep(0.2)
        raise BrokerError(
            f"the broker on {self.bootstrap} did not answer a Metadata request within "
            f"{self.start_timeout_s:.0f} s (last error: {last_error})\n{self._log_tails()}"
        )

    def _log_tails(self) -> str:
        assert self.data_dir is not None
        stdout = self.data_dir / "logs" / "stdout.log"
        return (
            f"--- errors in {self.server_log} ---\n{_errors(self.server_log)}\n"
            f"--- {self.server_log} (tail) ---\n{_tail(self.server_log)}\n"
            f"--- {stdout} (tail) ---\n{_tail(stdout)}"
        )

    def _kill_and_clean(self) -> None:
        if self.pid is not None:
            terminate(self.pid, 5.0, self._process)
        self._process, self.pid = None, None
        if not self.reused:  # a failed start never wipes data it was asked to keep
            self._remove_dir()

    def _remove_dir(self) -> None:
        if self.data_dir is not None and (self.data_dir / MARKER).exists():
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def _write_state(self) -> None:
        assert self.data_dir is not None
        state = {
            "pid": self.pid,
            "port": self.port,
            "controller_port": self.controller_port,
            "bootstrap": self.bootstrap,
            "cluster_id": self.cluster_id,
            "started_in_s": round(self.started_in_s or 0.0, 2),
            "properties": self.properties,
        }
        (self.data_dir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")


def read_state(directory: Path) -> dict[str, object] | None:
    """The broker.json a started broker left in `directory`, or None."""
    path = directory / STATE_FILE
    if not path.exists():
        return None
    loaded: dict[str, object] = json.loads(path.read_text())
    return loaded


if __name__ == "__main__":
    from broker_cli import main  # the command line (start / stop / status / restart)

    sys.exit(main())
