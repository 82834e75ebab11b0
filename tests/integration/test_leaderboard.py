"""A worker with a shadow policy against the real broker: the shadow learns under its own prefix in
the state changelog, is scored live on the served slates, the leaderboard topic gets records with
finite estimates and intervals, and `slatestream leaderboard` prints them."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from online.events import Item, RankRequest
from slatestream.leaderboard import leaderboard_command
from streams.client import SlatestreamClient, click_for, impression_for
from streams.control import ensure_control_topic
from streams.leaderboard import read_leaderboard
from streams.settings import StreamSettings
from streams.state_changelog import read_changelog
from streams.testing import WorkerProcess
from streams.topics import ensure_topics

from .worker_helpers import poll

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

CONFIG = """
[engine]
n_draws = 16

[[shadows]]
name = "explore"
policy = { name = "linear_ts", params = { exploration = 1.0 } }

[leaderboard]
close_after_s = 0.5
publish_interval_s = 2
n_bootstrap = 50
"""
ROUNDS = 60


def standings(settings: StreamSettings) -> dict[str, Any] | None:
    """The default scenario's standings of the latest leaderboard record, once it holds every round."""
    records = read_leaderboard(settings, timeout_s=10)
    if not records:
        return None
    board: dict[str, Any] = records[-1]["scenarios"]["default"]
    return board if board["rounds"] >= ROUNDS else None


def test_a_shadow_is_scored_live_and_its_leaderboard_printed(kafka_settings: StreamSettings, tmp_path: Path) -> None:
    settings = kafka_settings
    config = tmp_path / "slatestream.toml"
    config.write_text(CONFIG)
    ensure_topics(settings)
    ensure_control_topic(settings)
    items = [Item(item_id=f"i{n}", fields={"title": f"{'red shoe' if n % 2 else 'blue hat'} {n}"}) for n in range(16)]
    candidates = tuple(item.item_id for item in items)
    args = ("--config", str(config), "--encoder", "hashing", "--dim", "16")
    with WorkerProcess(settings, tmp_path / "store", tmp_path / "worker.log", args) as worker, \
            SlatestreamClient(settings) as client:
        worker.wait_ready()
        for item in items:
            client.publish(item)
        client.flush()
        # every round's slate must rank the catalog the shadow scores it on: a request served before
        # the last item is embedded logs fewer candidates than the shadow ranks (an unsupported round)
        poll(lambda: worker.counts().get("items", 0) == len(items), 60, "every item in the worker's catalog")
        for n in range(ROUNDS):  # users like the odd items (red shoes)
            slate = client.request_slate(RankRequest(request_id=f"r{n}", user_id=f"u{n % 6}", candidates=candidates,
                                                     k=4), timeout_s=60)
            client.publish(impression_for(slate))
            liked = [i.item_id for i in slate.items if int(i.item_id[1:]) % 2]
            if liked and n % 3:
                client.publish(click_for(slate, liked[0]))
        client.flush()
        found: list[dict[str, Any]] = []
        poll(lambda: bool(found.append(board) or True) if (board := standings(settings)) else False, 120,
             "a leaderboard record holding every round")
    board = found[-1]
    assert board["counts"]["inconsistent"] == 0 and board["on_policy"]["value"] > 0
    [shadow] = board["shadows"]
    assert shadow["name"] == "explore" and shadow["unranked_rounds"] == 0
    for name in ("ips", "snips", "dr"):
        estimate = shadow["estimates"][name]
        assert all(math.isfinite(estimate[k]) for k in ("value", "ci_low", "ci_high")), estimate
        assert estimate["ci_low"] <= estimate["value"] <= estimate["ci_high"] and estimate["ci_high"] > estimate[
            "ci_low"]
    assert shadow["support"] == 1.0 and shadow["diagnostics"]["dr"]["ess"] > 0
    changelog = read_changelog(settings)
    assert any(key.startswith(b"shadow/explore/linear_ts/user/u") for key in changelog)
    assert any(key.startswith(b"shadow/explore/linear_ts/global/") for key in changelog)
    env = {"SLATESTREAM_BROKER_URL": settings.broker_url, "SLATESTREAM_TOPIC_PREFIX": settings.topic_prefix}
    printed = CliRunner().invoke(leaderboard_command, [], env=env)
    assert printed.exit_code == 0, printed.output
    assert "scenario default:" in printed.output and "on-policy CTR" in printed.output
    assert "explore" in printed.output and (" DR " in printed.output or "unreliable (DR" in printed.output)
