"""WorkerProcess children do not outlive the process that started them."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from streams.testing.child_process import minor_faults, peak_rss_mib

PARENT = textwrap.dedent("""
    import subprocess, sys, time
    from streams.testing import die_with_parent
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], preexec_fn=die_with_parent)
    print(child.pid, flush=True)
    time.sleep(60)
""")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie waiting for init's reap counts as gone
        return stat.read().split(") ")[1][0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux only")
def test_a_child_started_with_die_with_parent_dies_when_its_parent_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert alive(child)
    parent.send_signal(signal.SIGTERM)  # Python's default: die at once, no cleanup code runs
    parent.wait(timeout=10)
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM is read from /proc")
def test_peak_rss_grows_with_what_a_process_touched_and_is_none_once_it_exited() -> None:
    touch = "import sys; b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096]); print(1, flush=True); " \
            "sys.stdin.readline()"
    child = subprocess.Popen([sys.executable, "-c", touch], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "1"
        peak = peak_rss_mib(child.pid)
        assert peak is not None and 200 < peak < 400  # the 200 MiB touched, plus the interpreter
    finally:
        child.communicate("\n", timeout=30)
    assert peak_rss_mib(child.pid) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="minor faults are read from /proc")
def test_minor_faults_count_the_fresh_pages_a_process_touches_and_are_none_once_it_exited() -> None:
    """A child touching 200 MiB of fresh memory page by page (51,200 pages of 4 KiB) between two
    reads: between half and twice that many more faults (huge pages would fault fewer, the
    interpreter's own allocations a few more)."""
    touch = "import sys; sys.stdin.readline(); b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096]); " \
            "print(1, flush=True); sys.stdin.readline()"
    child = subprocess.Popen([sys.executable, "-c", touch], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        before = minor_faults(child.pid)
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "1"
        after = minor_faults(child.pid)
        assert before is not None and after is not None
        assert 200 * 2**20 // 4096 // 2 <= after - before <= 2 * 200 * 2**20 // 4096
    finally:
        child.communicate("\n", timeout=30)
    assert minor_faults(child.pid) is None
