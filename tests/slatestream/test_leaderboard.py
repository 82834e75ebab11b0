"""`slatestream leaderboard`'s lines from a worker's record (the broker path: tests/integration)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np

from encoders.hashing import HashingEncoder
from online.config import parse_config
from online.evaluation.assessment import ReliabilityRule
from slatestream.leaderboard import format_record
from streams.testing import SharedTables
from streams.testing.served import RecordMaker, feedback_records, item_records, ranked, request_records
from streams.worker.core import WorkerCore
from streams.worker.leaderboard import leaderboard_record
from streams.worker.shadows import build_standings

ENCODER = HashingEncoder(dim=8)
CONFIG = parse_config({"shadows": [{"name": "explore", "policy": {"name": "linear_ts", "params": {"exploration": 1}}},
                                   {"name": "never", "policy": {"name": "uniform_random"}, "scenarios": ["default"]}],
                       "leaderboard": {"close_after_s": 0}})


def test_the_record_prints_each_scenario_with_the_reliable_first_and_the_rest_flagged() -> None:
    worker = WorkerCore(CONFIG, SharedTables(), lambda items: ENCODER.encode([i.text() for i in items]), dim=8)
    make = RecordMaker()
    worker.add_items(item_records(make, 20))
    for step in range(6):
        slates = ranked(worker, request_records(make, 50, n_users=10, k=4, start=50 * step))
        worker.learn(feedback_records(make, slates, seed=step))
    shadows = worker.shadows
    assert shadows is not None
    scenarios = build_standings(shadows.snapshot(), shadows.versions(), n_bootstrap=50,
                                rule=ReliabilityRule(precision=math.inf, max_round_share=0.1))  # a short log
    record = json.loads(json.dumps(leaderboard_record(shadows, "host:/store", [0], scenarios)))
    board = record["scenarios"]["default"]
    versus = board["shadows"][0]["versus_served"]
    assert versus["verdict"] in ("better", "worse", "tied", "undecided", "unreliable")
    assert set(versus["difference"]) >= {"value", "ci_low", "ci_high"} and versus["served"] > 0
    board["shadows"][1]["read"] = None  # as if unreliable, in a record from before the comparison:
    board["shadows"][1]["why"] = "no reliable estimate: effective sample size 12 < 30"  # DR and the reason
    del board["shadows"][1]["versus_served"]
    later = datetime.fromisoformat(record["time"]) + timedelta(seconds=7)
    lines = format_record(record, now=later.astimezone(UTC))
    assert lines[0].startswith("worker host:/store: published") and "(7 s ago)" in lines[0]
    assert "slates scored 300" in lines[0]
    assert lines[1].startswith("scenario default: 300 rounds, 1,200 shown items")
    assert lines[2].startswith("  served, on-policy CTR   0.")
    first, second = board["shadows"][0]["name"], board["shadows"][1]["name"]
    difference = versus["difference"]
    assert lines[3].startswith(f"  1. {first}") and "support 100%" in lines[3]
    assert f"{versus['verdict']}: {difference['value']:+.4f} [{difference['ci_low']:+.4f}, " in lines[3]
    assert " vs served (" in lines[3] and lines[4].strip() == versus["reason"]
    del lines[4]
    assert lines[4].startswith(f"  -. {second}") and "unreliable (DR 0." in lines[4]
    assert lines[5].strip() == "no reliable estimate: effective sample size 12 < 30"
    assert format_record(record, scenario="other", now=later) == lines[:1]
    assert np.isfinite(board["on_policy"]["value"])
