"""Fault suite (b): six SIGKILLs of one worker at seeded random points, three while feedback
streams in (mid-batch) and three while it recovers after a restart (within 0.1 s of its partition
assignment, while Faust restores the partitions' state, before "Worker ready"): the final state
equals an uninterrupted worker's on the same input.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from online.events import Click, Impression
from streams.control import ensure_control_topic
from streams.settings import StreamSettings
from streams.state_changelog import ChangelogEntry, caught_up, feedback_progress, read_changelog
from streams.testing import WorkerProcess, make_workload, publish, split
from streams.testing.faults import POLICY, WORKER_ARGS, learned_state, state_differences
from streams.topics import ensure_topics

from .test_worker_guarantee import count_slates, exposures_learned
from .worker_helpers import poll

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

SEED = 2026
KILLS = ("mid-batch",) * 3 + ("recovery",) * 3


def run_log(worker: WorkerProcess, since: int) -> str:
    """What this run of the worker logged (the log file is shared by every run)."""
    return worker.log_path.read_bytes()[since:].decode(errors="replace")


def start(settings: StreamSettings, tmp_path: Path) -> tuple[WorkerProcess, int]:
    log = tmp_path / "crash.log"
    since = log.stat().st_size if log.exists() else 0
    return WorkerProcess(settings, tmp_path / "crash-store", log, WORKER_ARGS).start(), since


def trickle(settings: StreamSettings, events: list[Impression | Click], slices: int = 20) -> threading.Thread:
    """Publish events in `slices` parts 50 ms apart, on a thread (traffic flowing during a kill)."""
    def run() -> None:
        for part in split(events, slices):
            publish(settings, part)
            time.sleep(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def wait_learned(settings: StreamSettings, worker: WorkerProcess, timeout_s: float = 240.0) -> dict[
        bytes, ChangelogEntry]:
    entries: dict[bytes, ChangelogEntry] = {}

    def done() -> bool:
        nonlocal entries
        assert worker.process is not None and worker.process.poll() is None, worker.log_text()[-3000:]
        entries = read_changelog(settings)
        return caught_up(feedback_progress(settings, entries))

    poll(done, timeout_s, f"{settings.topic_prefix} to learn every feedback record", interval_s=1.0)
    return entries


def test_repeated_sigkills_learn_what_an_uninterrupted_worker_learns(kafka_settings: StreamSettings,
                                                                     tmp_path: Path) -> None:
    rng = np.random.default_rng(SEED)
    workload = make_workload(n_users=60, n_items=30, n_requests=2400, seed=SEED)  # <= 64 requests a user
    feedback = workload.feedback()
    reference = kafka_settings
    crashed = kafka_settings.model_copy(update={"topic_prefix": kafka_settings.topic_prefix + "crash."})
    for settings in (reference, crashed):
        ensure_topics(settings)
        ensure_control_topic(settings)
        publish(settings, [*workload.items, *workload.requests])
    ref_worker = WorkerProcess(reference, tmp_path / "ref-store", tmp_path / "ref.log", WORKER_ARGS).start()
    worker, since = start(crashed, tmp_path)
    chunks = split(feedback, len(KILLS) + 1)
    published = 0
    kills: list[tuple[str, float, float, float, bool]] = []  # kind, before, at kill, published, ready at kill
    try:
        worker.wait_ready(180)
        ref_worker.wait_ready(180)
        for settings in (reference, crashed):  # clicks need their request ranked first
            poll(lambda s=settings: count_slates(s) >= len(workload.requests), 240, "every slate")
        publish(reference, feedback)
        # the first kill finds the worker running, so it is a mid-batch one; the order of the rest is drawn
        kinds = [KILLS[0], *rng.permutation(KILLS[1:])]
        for kind, chunk in zip(kinds, chunks, strict=False):
            before = exposures_learned(read_changelog(crashed))
            if kind == "mid-batch":
                worker.wait_ready(180)
                sender = trickle(crashed, chunk)
                poll(lambda b=before: exposures_learned(read_changelog(crashed)) > b, 120, "learning under way",
                     interval_s=0.05)
                time.sleep(rng.uniform(0.0, 0.4))
            else:  # during recovery: the run has its partitions and Faust restores them (0.25-3 s seen)
                sender = trickle(crashed, chunk, slices=1)
                poll(lambda w=worker, s=since: "assigned partitions [" in run_log(w, s), 180, "an assignment",
                     interval_s=0.02)
                time.sleep(rng.uniform(0.0, 0.1))
            ready = "Worker ready" in run_log(worker, since)
            worker.kill()
            sender.join(60)
            published += sum(len(e.shown) for e in chunk if isinstance(e, Impression))
            kills.append((str(kind), before, exposures_learned(read_changelog(crashed)), published, ready))
            worker, since = start(crashed, tmp_path)
        publish(crashed, chunks[-1])
        worker.wait_ready(180)
        crash_entries = wait_learned(crashed, worker)
        ref_entries = wait_learned(reference, ref_worker)
    finally:
        worker.stop()
        ref_worker.stop()

    print("kills (kind, exposures before, at the kill, published, ready):", kills)
    assert len(kills) == len(KILLS) >= 5
    assert sum(kind == "mid-batch" and before < at < sent for kind, before, at, sent, _ in kills) >= 2, kills
    assert sum(kind == "recovery" and not ready for kind, _, _, _, ready in kills) >= 2, kills
    learned, expected = learned_state(crash_entries), learned_state(ref_entries)
    assert not state_differences(learned, expected), state_differences(learned, expected)[:10]
    populations = [POLICY.decode_global(blob) for key, blob in learned.items() if "/global/" in key]
    assert sum(p.n_exposures for p in populations) == workload.exposures  # nothing lost, nothing doubled
    assert sum(p.reward_total for p in populations) == len(workload.clicks)
