"""Business filters through a crash: a user's recently shown items are stored with the user's
state, so a worker restarted on an empty local store (state back from the changelog) still
keeps them out of the user's slates; the exposure windows come back from their snapshot."""

from __future__ import annotations

import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from online.events import RankRequest
from streams.client import SlatestreamClient
from streams.control import ensure_control_topic
from streams.settings import StreamSettings
from streams.state_changelog import caught_up, feedback_progress, read_changelog
from streams.testing import T0, WorkerProcess, make_workload, publish
from streams.topics import ensure_topics

from .worker_helpers import poll

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

CONFIG = """
[engine]
n_draws = 8

[scenarios.default]
slate_size = 12
candidates = "auto"

[scenarios.default.policy]
name = "linear_ts"

[scenarios.default.filters]
exclude_shown_within_s = 86400

[scenarios.default.objectives]
fairness = 0.5
"""


def test_recently_shown_items_stay_filtered_after_a_restart_on_an_empty_store(
        kafka_settings: StreamSettings, tmp_path: Path) -> None:
    settings = kafka_settings
    workload = make_workload(n_users=3, n_items=12, n_requests=6, shown=2, seed=5)
    config = tmp_path / "slatestream.toml"
    config.write_text(CONFIG)
    ensure_topics(settings)
    ensure_control_topic(settings)
    publish(settings, [*workload.items, *workload.requests])
    candidates = tuple(item.item_id for item in workload.items)
    target = workload.impressions[0].user_id
    seen = {s.item_id for i in workload.impressions if i.user_id == target for s in i.shown}
    at = T0 + timedelta(seconds=600)  # event time within the filter's window of the impressions

    def served(client: SlatestreamClient, request_id: str) -> set[str]:
        slate = client.request_slate(RankRequest(request_id=request_id, user_id=target, candidates=candidates,
                                                 k=len(candidates), time=at), timeout_s=60)
        return {item.item_id for item in slate.items}

    args = ("--config", str(config), "--encoder", "hashing", "--dim", "16")
    store = tmp_path / "store"
    with WorkerProcess(settings, store, tmp_path / "worker.log", args) as worker, \
            SlatestreamClient(settings) as client:
        worker.wait_ready()
        served(client, "probe")  # every earlier request of the partition was ranked too
        publish(settings, workload.feedback())
        poll(lambda: caught_up(feedback_progress(settings, read_changelog(settings))), 120, "learning")
        assert served(client, "before") == set(candidates) - seen
        worker.kill()  # SIGKILL: no shutdown
        shutil.rmtree(store)  # nothing local: every state comes back from the changelog
        worker.start()
        worker.wait_ready()
        assert served(client, "after") == set(candidates) - seen
    assert seen and len(seen) < len(candidates)
    restored = [line for line in (tmp_path / "worker.log").read_text().splitlines() if "exposure windows:" in line]
    # the first start found none (per partition); the restart loaded the snapshots from the changelog
    assert any(re.search(r"exposure windows: loaded [1-9]", line) for line in restored), restored
    assert all("no snapshot stored" in line or "exposure windows: loaded" in line for line in restored), restored
