"""examples/news_site.py against the real broker and a real worker: it runs, and the worker learns
(seeded: the click-through rate of its later rounds is above that of its first rounds)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from streams.settings import StreamSettings
from streams.testing.worker_process import WorkerProcess, worker_env
from streams.topics import ensure_topics

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "news_site.py"


def test_news_site_learns(kafka_settings: StreamSettings, tmp_path: Path) -> None:
    ensure_topics(kafka_settings)
    report = tmp_path / "rounds.json"
    with WorkerProcess(kafka_settings, tmp_path / "store", tmp_path / "worker.log",
                       args=("--dim", "32", "--n-draws", "32", "--seed", "0")) as worker:
        worker.wait_ready()
        run = subprocess.run(
            [sys.executable, str(EXAMPLE), "--rounds", "10", "--readers", "30", "--pause-s", "1.5", "--seed", "3",
             "--report", str(report)],
            env=worker_env(kafka_settings, tmp_path / "unused"), capture_output=True, text=True, timeout=300,
        )
        assert run.returncode == 0, run.stdout + run.stderr + worker.log_text()[-3000:]
    rounds = json.loads(report.read_text())
    assert [r["round"] for r in rounds] == list(range(10)) and all(r["slates"] == 30 for r in rounds)
    first = sum(r["clicks"] for r in rounds[:2]) / sum(r["shown"] for r in rounds[:2])
    later = sum(r["clicks"] for r in rounds[-4:]) / sum(r["shown"] for r in rounds[-4:])
    favourite_first = sum(r["favourites_shown"] for r in rounds[:2]) / sum(r["shown"] for r in rounds[:2])
    favourite_later = sum(r["favourites_shown"] for r in rounds[-4:]) / sum(r["shown"] for r in rounds[-4:])
    print(run.stdout)
    assert later > first, run.stdout
    assert favourite_later > favourite_first, run.stdout  # it shows each reader more of their section
