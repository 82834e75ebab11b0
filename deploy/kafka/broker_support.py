"""Building blocks of the local Kafka broker (deploy/kafka/broker.py): the Maven jar cache,
the Java executable, free ports, a minimal Metadata v4 request used as the readiness probe,
and process helpers. Standard library only.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"
CACHE_DIR = HERE / ".cache"
JARS_DIR = CACHE_DIR / "jars"
HOST = "127.0.0.1"


class BrokerError(RuntimeError):
    """The broker could not be assembled, started or reached."""


@dataclass(frozen=True)
class ClusterMetadata:
    """What a Metadata response says: live brokers as (node_id, host, port) and ids."""

    brokers: tuple[tuple[int, str, int], ...]
    controller_id: int
    cluster_id: str | None


# --------------------------------------------------------------------------- jars


def ensure_jars(jars_dir: Path = JARS_DIR, pom: Path = POM) -> Path:
    """Copy the broker classpath into `jars_dir` unless a copy for this pom.xml exists.

    A stamp file holds the sha256 of pom.xml; a changed pom wipes and re-copies the jars so
    two Kafka versions never share a classpath. A file lock serialises concurrent callers.
    """
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    stamp = jars_dir / ".pom-sha256"
    jars_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(jars_dir.parent / ".jars.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists() and stamp.read_text().strip() == digest:
            return jars_dir
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError("`mvn` is not on PATH: it is needed once to fetch the Kafka jars from Maven Central")
        shutil.rmtree(jars_dir, ignore_errors=True)
        command = [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies", f"-Dkafka.jars.dir={jars_dir}"]
        result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
        if result.returncode != 0 or not any(jars_dir.glob("kafka_2.13-*.jar")):
            raise BrokerError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
        stamp.write_text(digest + "\n")
    return jars_dir


def java_executable() -> str:
    """$JAVA_HOME/bin/java when set, else `java` from PATH."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise BrokerError("`java` (JDK/JRE 17+) is not on PATH and JAVA_HOME is unset")
    return java


# --------------------------------------------------------------------- network


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _string(raw: bytes, at: int) -> tuple[str | None, int]:
    (size,) = struct.unpack_from(">h", raw, at)
    at += 2
    if size < 0:
        return None, at
    return raw[at : at + size].decode(), at + size


def metadata_request(host: str, port: int, timeout_s: float = 2.0) -> ClusterMetadata:
    """Send one Kafka Metadata request (v4, no topics) and parse the brokers it lists.

    Raises OSError when nothing answers and BrokerError on a malformed reply.
    """
    client_id = b"slatestream-broker-check"
    # header v1: api_key=3 (Metadata), api_version=4, correlation_id, client_id
    # body v4: topics = [] (int32 0), allow_auto_topic_creation = false
    body = struct.pack(">hhih", 3, 4, 7, len(client_id)) + client_id + struct.pack(">ib", 0, 0)
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        raw = _recv_exact(sock, 4)
        (size,) = struct.unpack(">i", raw)
        raw = _recv_exact(sock, size)
    try:
        correlation_id, _throttle, count = struct.unpack_from(">iii", raw, 0)
        if correlation_id != 7:
            raise BrokerError(f"metadata reply has correlation id {correlation_id}, expected 7")
        at = 12
        brokers = []
        for _ in range(count):
            (node_id,) = struct.unpack_from(">i", raw, at)
            broker_host, at = _string(raw, at + 4)
            (broker_port,) = struct.unpack_from(">i", raw, at)
            _rack, at = _string(raw, at + 4)
            brokers.append((node_id, broker_host or "", broker_port))
        cluster_id, at = _string(raw, at)
        (controller_id,) = struct.unpack_from(">i", raw, at)
    except struct.error as error:
        raise BrokerError(f"malformed metadata reply: {error}") from error
    return ClusterMetadata(tuple(brokers), controller_id, cluster_id)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        chunks += chunk
    return bytes(chunks)


# ---------------------------------------------------------------------- process


def _random_cluster_id() -> str:
    """Same format as `StorageTool random-uuid`: 16 random bytes, URL-safe base64."""
    while True:
        text = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


META_PROPERTIES = Path("data") / "meta.properties"
"""Written into a broker dir (log.dirs = <dir>/data) by StorageTool format: cluster and node id."""


def formatted(directory: Path) -> bool:
    """Whether a broker has formatted `directory` (its data and KRaft metadata are there)."""
    return (directory / META_PROPERTIES).is_file()


def cluster_id_of(directory: Path) -> str:
    """The cluster id StorageTool wrote into a formatted broker dir; BrokerError if none."""
    for line in (directory / META_PROPERTIES).read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "cluster.id" and value.strip():
            return value.strip()
    raise BrokerError(f"{directory / META_PROPERTIES} names no cluster.id")


def _die_with_parent() -> None:  # runs in the child between fork and exec
    import ctypes

    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: SIGTERM when the parent thread exits
    if os.getppid() != parent:
        os._exit(1)


def process_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"  # a zombie is gone
    return True


def terminate(pid: int, timeout_s: float, process: subprocess.Popen[bytes] | None = None) -> bool:
    """SIGTERM `pid`, SIGKILL after `timeout_s`; True when it shut down without SIGKILL."""

    def gone() -> bool:
        return process.poll() is not None if process is not None else not process_alive(pid)

    if gone():
        return True
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if gone():
            return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    while not gone():
        time.sleep(0.05)
    return False


def _tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"({path} does not exist)"
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(text)


def _errors(path: Path, limit: int = 12) -> str:
    """The ERROR/FATAL lines and `Caused by:` lines of a log, without repeats."""
    if not path.exists():
        return "(none)"
    found: list[str] = []
    for line in path.read_text(errors="replace").splitlines():
        if (" ERROR " in line or " FATAL " in line or line.startswith("Caused by:")) and line not in found:
            found.append(line)
    return "\n".join(found[:limit]) or "(none)"
