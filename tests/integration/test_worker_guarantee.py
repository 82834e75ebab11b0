"""Exactly-once learned state through a SIGKILL: a crashed-and-restarted worker learns what an
uninterrupted one learns from the same input (state read back from the changelog topics)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from kafka import KafkaConsumer, TopicPartition

from online.policies.linear_ts import LinearThompsonSampling
from streams.control import ensure_control_topic
from streams.settings import StreamSettings
from streams.state_changelog import ChangelogEntry, caught_up, feedback_progress, live_values, read_changelog
from streams.testing import WorkerProcess, Workload, make_workload, publish, split
from streams.topics import TopicNames, ensure_topics

from .worker_helpers import poll

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

WORKER_ARGS = ("--encoder", "hashing", "--dim", "16", "--n-draws", "8")
POLICY = LinearThompsonSampling()


def count_slates(settings: StreamSettings) -> int:
    topic = TopicNames.from_settings(settings).slates
    consumer = KafkaConsumer(**settings.kafka_client_config(), group_id=None, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
        return sum(consumer.end_offsets(tps).values())
    finally:
        consumer.close(autocommit=False)


def prepare(settings: StreamSettings, workload: Workload) -> None:
    ensure_topics(settings)
    ensure_control_topic(settings)
    publish(settings, [*workload.items, *workload.requests])


def wait_caught_up(settings: StreamSettings, worker: WorkerProcess, timeout_s: float = 240.0) -> dict[
        bytes, ChangelogEntry]:
    entries: dict[bytes, ChangelogEntry] = {}

    def done() -> bool:
        nonlocal entries
        assert worker.process is not None and worker.process.poll() is None, worker.log_text()[-4000:]
        entries = read_changelog(settings)
        return caught_up(feedback_progress(settings, entries))

    poll(done, timeout_s, f"{settings.topic_prefix} to learn every feedback record", interval_s=1.0)
    return entries


def exposures_learned(entries: dict[bytes, ChangelogEntry]) -> float:
    """Exposures held by the population states in the changelog (sum over partitions)."""
    return sum(POLICY.decode_global(blob).n_exposures for blob in learned(entries, "global/").values())


def assert_same_state(ours: dict[str, bytes], theirs: dict[str, bytes]) -> None:
    assert sorted(ours) == sorted(theirs)
    for key in ours:
        if "/user/" in key:
            a, b = POLICY.decode_user(ours[key]), POLICY.decode_user(theirs[key])
        else:
            a, b = POLICY.decode_global(ours[key]), POLICY.decode_global(theirs[key])
        # float32 user sums (and the population's increments from them) round after every
        # batch: another batch split agrees to float32 precision of the largest sum, while an
        # event counted twice would add a whole x x^T (counts are compared exactly)
        scale = 1e-6 * max(np.abs(b.gram_upper).max(), 1.0)
        assert np.allclose(a.gram_upper, b.gram_upper, rtol=0, atol=scale), key
        assert np.allclose(a.response, b.response, rtol=0, atol=scale), key
        assert (a.n_exposures, a.reward_total) == (b.n_exposures, b.reward_total), key


def learned(entries: dict[bytes, ChangelogEntry], prefix: str) -> dict[str, bytes]:
    return live_values(entries, f"linear_ts/{prefix}".encode())


def test_sigkill_mid_stream_learns_the_same_state(kafka_settings: StreamSettings, tmp_path: Path) -> None:
    workload = make_workload(n_users=40, n_items=30, n_requests=1200, seed=7)
    feedback = workload.feedback()
    reference = kafka_settings
    crashed = kafka_settings.model_copy(update={"topic_prefix": kafka_settings.topic_prefix + "crash."})
    for settings in (reference, crashed):
        prepare(settings, workload)
    ref_worker = WorkerProcess(reference, tmp_path / "ref-store", tmp_path / "ref.log", WORKER_ARGS).start()
    crash_worker = WorkerProcess(crashed, tmp_path / "crash-store", tmp_path / "crash.log", WORKER_ARGS).start()
    try:
        ref_worker.wait_ready()
        crash_worker.wait_ready()
        # clicks need their request ranked first: wait for every slate before any feedback
        for settings in (reference, crashed):
            poll(lambda s=settings: count_slates(s) >= len(workload.requests), 240, "every slate")
        publish(reference, feedback)

        first, second, third = split(feedback, 3)
        publish(crashed, first)
        before = exposures_learned(wait_caught_up(crashed, crash_worker))
        # kill as soon as some of the second third reached the changelog; the last third is
        # published while the worker is down, so the kill is always mid-stream
        publish(crashed, second)
        poll(lambda: exposures_learned(read_changelog(crashed)) > before, 60, "progress on the second third",
             interval_s=0.05)
        crash_worker.kill()
        at_kill = exposures_learned(read_changelog(crashed))
        assert before < at_kill < workload.exposures
        publish(crashed, third)

        restarted = WorkerProcess(crashed, tmp_path / "crash-store", tmp_path / "crash.log", WORKER_ARGS).start()
        try:
            restarted.wait_ready()
            crash_entries = wait_caught_up(crashed, restarted)
            ref_entries = wait_caught_up(reference, ref_worker)
            # in = out: the restarted worker's own counts balance (logged every 5 s)
            poll(lambda: bool(restarted.counts()) and restarted.counts()["received"] > 0, 60, "counts")
            counts = restarted.counts()
            done = sum(counts[k] for k in ("ranked", "learned", "items", "skipped_duplicates", "dead_lettered",
                                           "controls"))
            assert counts["received"] == done and counts["dead_lettered"] == 0
            assert "batch lanes on" in restarted.log_text()  # the path measured in bench/, not the fallback
            assert "fetched as the core's records" in restarted.log_text()  # aiokafka_private's lean fetches
        finally:
            restarted.stop()
    finally:
        ref_worker.stop()
        crash_worker.stop()

    populations = learned(crash_entries, "global/")
    users = learned(crash_entries, "user/")
    assert len(populations) == crashed.partitions and len(users) == 40
    # which run lost or doubled what, if either did (a diagnosis before the key-by-key comparison)
    totals = {name: {key: POLICY.decode_global(blob).n_exposures for key, blob in learned(entries, "global/").items()}
              for name, entries in (("crashed", crash_entries), ("reference", ref_entries))}
    assert {name: sum(per_key.values()) for name, per_key in totals.items()} == {
        "crashed": workload.exposures, "reference": workload.exposures}, (totals, crash_worker.log_text()[-3000:])
    assert_same_state(populations, learned(ref_entries, "global/"))
    assert_same_state(users, learned(ref_entries, "user/"))
    # nothing lost, nothing doubled: the states sum to the input
    total = [POLICY.decode_global(blob) for blob in populations.values()]
    assert sum(s.n_exposures for s in total) == workload.exposures
    assert sum(s.reward_total for s in total) == len(workload.clicks)
    per_user = [POLICY.decode_user(blob) for blob in users.values()]
    assert sum(s.n_exposures for s in per_user) == workload.exposures
    assert sum(s.reward_total for s in per_user) == len(workload.clicks)
