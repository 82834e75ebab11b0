"""Two workers share the partitions: a user's state follows its partition across a rebalance,
and after both finish every feedback record is in the state exactly once."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from online.policies.linear_ts import LinearThompsonSampling
from streams.client import SlatestreamClient
from streams.control import ensure_control_topic
from streams.settings import StreamSettings
from streams.state_changelog import caught_up, feedback_progress, live_values, read_changelog
from streams.testing import WorkerProcess, make_workload, publish, split
from streams.topics import ensure_topics, partition_of

from .worker_helpers import poll, slate_means

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ARGS = ("--encoder", "hashing", "--dim", "16", "--n-draws", "8")
POLICY = LinearThompsonSampling()


def assigned(worker: WorkerProcess) -> list[int] | None:
    """The partitions of the worker's latest assignment (None before the first)."""
    found = re.findall(r"assigned partitions \[([\d, ]*)\]", worker.log_text())
    return None if not found else [int(p) for p in found[-1].replace(" ", "").split(",") if p]


def test_state_follows_its_partition_to_a_second_worker(kafka_settings: StreamSettings, tmp_path: Path) -> None:
    settings = kafka_settings
    workload = make_workload(n_users=16, n_items=12, n_requests=480, seed=11)
    ensure_topics(settings)
    ensure_control_topic(settings)
    publish(settings, [*workload.items, *workload.requests])
    candidates = tuple(item.item_id for item in workload.items)
    users = sorted({r.user_id for r in workload.requests})
    first, second, third = split(workload.feedback(), 3)
    a = WorkerProcess(settings, tmp_path / "store-a", tmp_path / "a.log", ARGS).start()
    b = WorkerProcess(settings, tmp_path / "store-b", tmp_path / "b.log", ARGS)
    try:
        with SlatestreamClient(settings) as client:
            a.wait_ready()
            for user in users:  # answered: every earlier request of the user's partition is ranked
                slate_means(client, f"probe-{user}", user, candidates, timeout_s=60)
            publish(settings, first)
            poll(lambda: caught_up(feedback_progress(settings, read_changelog(settings))), 120, "A to learn")
            served_by_a = {user: slate_means(client, f"a-{user}", user, candidates, timeout_s=60) for user in users}

            b.start()
            b.wait_ready()
            poll(lambda: bool(assigned(b)) and not set(assigned(b) or []) & set(assigned(a) or [0, 1, 2, 3]),
                 120, "B to take over partitions from A")
            moved = set(assigned(b) or [])
            assert moved and moved | set(assigned(a) or []) == set(range(settings.partitions))
            moved_users = [u for u in users if partition_of(u, settings.partitions) in moved]
            assert moved_users
            served_by_b = {user: slate_means(client, f"b-{user}", user, candidates, timeout_s=60)
                           for user in moved_users}
            for user in moved_users:  # B serves A's learned state, not the prior
                np.testing.assert_allclose(served_by_b[user], served_by_a[user])

            publish(settings, second)  # both workers learn their partitions
            poll(lambda: caught_up(feedback_progress(settings, read_changelog(settings))), 120, "A and B to learn")
            poll(lambda: b.counts().get("learned", 0) > 0, 30, "B's counts to show its learning")
            publish(settings, third)
            poll(lambda: caught_up(feedback_progress(settings, read_changelog(settings))), 120, "the rest")
    finally:
        b.stop()
        a.stop()

    entries = read_changelog(settings)
    states = {k: POLICY.decode_user(v) for k, v in live_values(entries, b"linear_ts/user/").items()}
    shown = Counter[str]()
    for impression in workload.impressions:
        shown[impression.user_id] += len(impression.shown)
    clicked = Counter(click.user_id for click in workload.clicks)
    assert {k.rsplit("/", 1)[1]: (s.n_exposures, s.reward_total) for k, s in states.items()} == {
        user: (float(shown[user]), float(clicked[user])) for user in users}
    populations = [POLICY.decode_global(v) for v in live_values(entries, b"linear_ts/global/").values()]
    assert sum(p.n_exposures for p in populations) == workload.exposures
    assert sum(p.reward_total for p in populations) == len(workload.clicks)
