"""What the test and benchmark launchers of `slatestream` subprocesses share: start one with its
output in a log file, tied to the parent's life; read the log; stop it (SIGTERM, then SIGKILL).

Subclasses give `start()` (call `_spawn` with their command line and environment) and their own
readiness wait (`WorkerProcess`, `GatewayProcess`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent() -> None:
    """`preexec_fn` for a child process: on Linux, the kernel sends it SIGKILL when the process
    that started it dies, however it dies (a benchmark killed by SIGTERM runs no `__exit__`, and
    its workers used to keep spinning on a broker that was gone). Elsewhere it does nothing."""
    if sys.platform.startswith("linux"):
        import ctypes

        parent = os.getppid()
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)


def peak_rss_mib(pid: int) -> float | None:
    """Peak resident memory of process `pid` (MiB, VmHWM of /proc/PID/status); None where the
    process or that line is gone (exited, not Linux)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return None


def minor_faults(pid: int) -> int | None:
    """Minor page faults of process `pid` so far (field 10 of /proc/PID/stat: pages it touched
    that needed no disk, mostly fresh memory the kernel zeroed); None where the process is gone
    (exited, not Linux)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[7])  # after "pid (comm)": state is field 3, minflt field 10


class ChildProcess:
    """One subprocess whose stdout and stderr are appended to `log_path`."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        raise NotImplementedError

    def _spawn(self, command: Sequence[str], env: Mapping[str, str]) -> None:
        """Start `command` with `env`, its output appended to the log, killed with this process."""
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                list(command), env=dict(env), stdout=out, stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,  # only a prctl call: safe between fork and exec
            )

    def log_text(self) -> str:
        """The log so far ("" before the process wrote anything)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def peak_rss_mib(self) -> float | None:
        """The process's peak resident memory so far (MiB, Linux's VmHWM); None once it exited."""
        if self.process is None or self.process.poll() is not None:
            return None
        return peak_rss_mib(self.process.pid)

    def minor_faults(self) -> int | None:
        """The process's minor page faults so far; None once it exited."""
        if self.process is None or self.process.poll() is not None:
            return None
        return minor_faults(self.process.pid)

    def kill(self) -> None:
        """SIGKILL: no commit, no flush, no shutdown (a crash)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self, timeout_s: float = 60.0) -> None:
        """SIGTERM (clean shutdown), SIGKILL after timeout_s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self) -> Self:
        return self.start() if self.process is None else self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()
