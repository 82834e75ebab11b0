"""bench/worker_throughput.py's in-process baseline learns what it times (it once timed dead
letters: its item records lacked their key, so every item, impression and click was refused)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from streams.testing import make_workload
from streams.worker.core import WorkerCore

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from worker_throughput import in_process_learn


def test_in_process_learn_learns_every_record() -> None:
    workload = make_workload(n_users=20, n_items=30, n_requests=300, shown=3, click_rate=0.5, seed=0)
    cores: list[WorkerCore] = []
    seconds = in_process_learn(workload, 2, 100, prepare=cores.append, clock=time.process_time)
    assert seconds > 0
    counts = cores[0].counts
    assert counts.learned == len(workload.feedback()) and counts.dead_lettered == 0
    assert counts.ranked == len(workload.requests)
