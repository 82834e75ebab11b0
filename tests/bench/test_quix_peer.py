"""The quix-streams peer of bench/worker_throughput.py: without quixstreams the bench says so and
how to install it (CI has no quixstreams: it is never a project dependency); the commit clock."""

import logging
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PEER = ROOT / "bench" / "quix_peer.py"


def test_without_quixstreams_the_peer_says_how_to_install_it(tmp_path: Path) -> None:
    env = {**os.environ, "QUIX_SITE": str(tmp_path)}  # an empty folder: no quixstreams there nor in the venv
    done = subprocess.run([sys.executable, str(PEER), "--check"], capture_output=True, text=True, env=env,
                          timeout=120, check=False)
    assert done.returncode == 3
    assert "quixstreams is not importable" in done.stdout
    assert ".venv/bin/python bench/quix_peer.py --install" in done.stdout


def test_the_commit_clock_keeps_the_last_finished_commit() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from quix_peer import CommitClock
    finally:
        sys.path.remove(str(ROOT / "bench"))
    clock = CommitClock()
    for created, message in ((1.0, "Committing a checkpoint; forced=False"),
                             (2.0, "Committed a checkpoint; forced=False, time_elapsed=0.1s"),
                             (3.0, "Committing a checkpoint; forced=True"),
                             (4.0, "Committed a checkpoint; forced=True, time_elapsed=0.2s")):
        record = logging.LogRecord("quixstreams.processing.context", logging.DEBUG, __file__, 1, message, None, None)
        record.created = created
        clock.emit(record)
    assert (clock.last_commit_at, clock.commits) == (4.0, 2)
