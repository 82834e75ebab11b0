"""Fault suite (c): the broker stops mid-stream, once cleanly (SIGTERM) and once by kill -9, and
comes back on its data (`KafkaBroker(keep=True)`, `restart()`) while a worker runs: nothing is
lost, nothing counted twice (the state equals the worker core's over the same input, with no
fault), items published after each outage are rankable (the catalog follower rode it out), the
worker stays up, and each outage is two lines of its log, not hundreds.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path
from types import ModuleType

import pytest

from online.events import Item, RankRequest
from streams.client import SlateRequestError, SlatestreamClient
from streams.control import ensure_control_topic
from streams.settings import StreamSettings
from streams.state_changelog import caught_up, feedback_progress, read_changelog
from streams.testing import WorkerProcess, make_workload, publish, split
from streams.testing.faults import (
    POLICY,
    WORKER_ARGS,
    free_port,
    learned_state,
    reference_state,
    state_differences,
    worker_model,
)
from streams.topics import ensure_topics

from .test_worker_guarantee import count_slates
from .worker_helpers import poll

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

OUTAGE_S = 5.0
"""Seconds the broker stays down (besides its stop and start)."""


def logged(worker: WorkerProcess, start: int, end: int | None = None) -> str:
    """The worker's log between two byte offsets."""
    return worker.log_path.read_bytes()[start:end].decode(errors="replace")


def error_lines(text: str) -> list[str]:
    """The worker's ERROR lines, our outage lines left out."""
    return [line for line in text.splitlines() if "[ERROR]" in line and "broker unreachable since" not in line]


def knows_a_new_item(settings: StreamSettings, item_id: str, timeout_s: float = 60.0) -> bool:
    """Publish an item, then ask for slates of it until the worker serves it (or timeout_s)."""
    with SlatestreamClient(settings) as client:
        client.publish(Item(item_id=item_id, fields={"title": f"fresh {item_id}"}))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            request = RankRequest(request_id=f"probe-{item_id}-{time.monotonic_ns()}", user_id="probe",
                                  candidates=(item_id,), k=1)
            try:
                if [i.item_id for i in client.request_slate(request, timeout_s=5).items] == [item_id]:
                    return True
            except (TimeoutError, SlateRequestError):  # not served yet, or "no candidate is in the catalog" yet
                continue
    return False


def test_broker_restarts_mid_stream_lose_and_double_nothing(broker_module: ModuleType, tmp_path: Path) -> None:
    broker = broker_module.KafkaBroker(free_port(), free_port(), tmp_path / "broker", keep=True).start()
    settings = StreamSettings(broker_url=broker.url, topic_prefix="restart.", partitions=4,
                              broker_session_timeout_s=6.0)
    workload = make_workload(n_users=30, n_items=20, n_requests=900, seed=31)
    worker = WorkerProcess(settings, tmp_path / "store", tmp_path / "worker.log", WORKER_ARGS)
    outages: list[tuple[str, int, int]] = []  # how, log size when it began, when the broker was back
    try:
        ensure_topics(settings)
        ensure_control_topic(settings)
        publish(settings, [*workload.items, *workload.requests])
        worker.start().wait_ready(180)
        poll(lambda: count_slates(settings) >= len(workload.requests), 240, "every slate")
        first, second, third = split(workload.feedback(), 3)
        for chunk, how in ((first, "SIGTERM"), (second, "SIGKILL")):
            publish(settings, chunk)  # acknowledged, then the broker goes while the worker learns it
            began = worker.log_path.stat().st_size
            if how == "SIGTERM":
                broker.stop(keep_data=True)
            else:
                os.kill(broker.pid, signal.SIGKILL)
            time.sleep(OUTAGE_S)
            broker.restart()
            outages.append((how, began, worker.log_path.stat().st_size))
            poll(lambda b=began: "broker reachable again" in logged(worker, b), 120, "the worker to reconnect")
            assert knows_a_new_item(settings, f"after-{how}"), f"an item published after the {how} outage"
        publish(settings, third)
        poll(lambda: caught_up(feedback_progress(settings, read_changelog(settings))), 240, "every record learned",
             interval_s=1.0)
        assert worker.process is not None and worker.process.poll() is None, worker.log_text()[-3000:]
        # up all along: one start (a rebalance after the broker's kill -9 may complete recovery, and
        # log Faust's "Worker ready", again in the same process)
        assert worker.log_text().count("[^Worker]: Starting...") == 1
        learned = learned_state(read_changelog(settings))
        expected = reference_state(settings, worker_model(), workload.requests, workload.feedback())
    finally:
        worker.stop()
        broker.stop()

    assert not state_differences(learned, expected), state_differences(learned, expected)[:10]
    populations = [POLICY.decode_global(blob) for key, blob in learned.items() if "/global/" in key]
    assert sum(p.n_exposures for p in populations) == workload.exposures
    assert sum(p.reward_total for p in populations) == len(workload.clicks)

    log = worker.log_text()
    assert len(re.findall("broker unreachable since", log)) == len(re.findall("broker reachable again", log)) == 2
    for how, began, back in outages:  # while the broker was down: our line, hardly anything else
        down = logged(worker, began, back)
        assert down.count("broker unreachable since") == 1, (how, down[-2000:])
        assert len(error_lines(down)) <= 5, (how, error_lines(down)[:10])
    print("outages:", re.findall(r"broker reachable again after .*", log))
