"""Right to be forgotten end to end: `slatestream forget USER` tombstones the user's state in the
changelog, and the user's next slate comes from the population prior again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from streams.client import SlatestreamClient
from streams.control import ensure_control_topic
from streams.settings import StreamSettings
from streams.state_changelog import caught_up, feedback_progress, read_changelog
from streams.testing import WorkerProcess, make_workload, publish, worker_env
from streams.topics import ensure_topics, partition_of

from .worker_helpers import poll, slate_means

WORKER_ARGS = ("--encoder", "hashing", "--dim", "16", "--n-draws", "8")
pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_forget_tombstones_the_user_and_restores_the_prior(kafka_settings: StreamSettings, tmp_path: Path) -> None:
    settings = kafka_settings
    workload = make_workload(n_users=8, n_items=12, n_requests=240, seed=3)
    ensure_topics(settings)
    ensure_control_topic(settings)
    publish(settings, [*workload.items, *workload.requests])
    with WorkerProcess(settings, tmp_path / "store", tmp_path / "worker.log", WORKER_ARGS) \
            as worker, SlatestreamClient(settings) as client:
        worker.wait_ready()
        candidates = tuple(item.item_id for item in workload.items)
        # a request answered means every earlier request of that partition was ranked too
        for user in {r.user_id for r in workload.requests}:
            slate_means(client, f"probe-{user}", user, candidates)
        publish(settings, workload.feedback())
        poll(lambda: caught_up(feedback_progress(settings, read_changelog(settings))), 120, "learning")

        target = max({c.user_id for c in workload.clicks}, key=lambda u: sum(c.user_id == u for c in workload.clicks))
        key = f"linear_ts/user/{target}".encode()
        assert read_changelog(settings)[key].value is not None
        partition = partition_of(target, settings.partitions)
        stranger = next(f"new{n}" for n in range(1000) if partition_of(f"new{n}", settings.partitions) == partition)
        prior = slate_means(client, "stranger-before", stranger, candidates)
        learned = slate_means(client, "target-before", target, candidates)
        assert not np.allclose(learned, prior)  # the user's own clicks moved its posterior

        forget = run_forget(settings, tmp_path, target)
        assert forget.returncode == 0, forget.stdout + forget.stderr
        assert "tombstone" in forget.stdout
        entry = read_changelog(settings)[key]
        assert entry.value is None and entry.partition == partition

        after = slate_means(client, "target-after", target, candidates)
        stranger_after = slate_means(client, "stranger-after", stranger, candidates)
        np.testing.assert_allclose(after, stranger_after)  # the target is a new user again
        assert not np.allclose(stranger_after, prior)  # and its sums left the partition's population
        poll(lambda: worker.counts().get("forgotten", 0) == 1, 30, "the forget in the worker's counts")

        for again in (target, "never-seen"):  # idempotent: a forgotten or unknown user is acknowledged too
            repeated = run_forget(settings, tmp_path, again)
            assert repeated.returncode == 0 and "tombstone" in repeated.stdout, repeated.stdout + repeated.stderr
        poll(lambda: worker.counts().get("forgotten", 0) == 3, 30, "the repeated forgets in the worker's counts")


def run_forget(settings: StreamSettings, tmp_path: Path, user: str) -> subprocess.CompletedProcess[str]:
    """`slatestream forget USER --wait 60` against the test's broker."""
    return subprocess.run([sys.executable, "-m", "slatestream", "forget", user, "--wait", "60"],
                          env=worker_env(settings, tmp_path / "unused"), capture_output=True, text=True, timeout=120)
