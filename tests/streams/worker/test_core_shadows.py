"""Shadow policies in the worker's core, without Kafka: never changing what is served, their state
under their own prefix (changelogged, recovered, exactly once, forgotten), and live standings."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from encoders.hashing import HashingEncoder
from online.config import SlatestreamConfig, parse_config
from online.events import Item, encode_event
from online.policies.linear_ts import LinearThompsonSampling
from streams.control import ForgetUser, encode_control
from streams.testing import SharedTables
from streams.testing.served import RecordMaker, feedback_records, item_records, ranked, request_records
from streams.worker.core import Record, WorkerCore
from streams.worker.shadows import build_standings
from streams.worker.table_store import unwrap

ENCODER = HashingEncoder(dim=8)
SHADOWS = {"shadows": [
    {"name": "explore", "policy": {"name": "linear_ts", "params": {"exploration": 1.0}}},  # the served policy's name
    {"name": "popular", "policy": {"name": "most_popular"}},
], "leaderboard": {"close_after_s": 0.0}}


def embed(items: list[Item]) -> np.ndarray:
    return ENCODER.encode([i.text() for i in items])


def core(table: dict[bytes, bytes], config: SlatestreamConfig | None = None) -> WorkerCore:
    return WorkerCore(config or SlatestreamConfig(), SharedTables(table), embed, dim=8, seed=7)


def serve(worker: WorkerCore, rounds: int = 6, per_round: int = 25) -> list[str]:
    """Items, then rounds of requests and their feedback; the served slates, encoded."""
    make = RecordMaker()
    worker.add_items(item_records(make, 30))
    served = []
    for step in range(rounds):
        slates = ranked(worker, request_records(make, per_round, n_users=12, k=4, start=step * per_round))
        served += [encode_event(slate).decode() for slate in slates]
        assert worker.learn(feedback_records(make, slates, seed=step)) == []
    return served


def served_keys(table: dict[bytes, bytes]) -> dict[bytes, bytes]:
    return {key: value for key, value in table.items() if not key.startswith(b"shadow/")}


def test_shadows_never_change_what_is_served() -> None:
    """A seeded run with two shadows (one of the served policy's own kind) serves bitwise the
    slates the same run serves without them, and leaves every served state identical."""
    plain, shadowed = {}, {}
    without = serve(core(plain))
    with_shadows = serve(core(shadowed, parse_config(SHADOWS)))
    assert with_shadows == without
    assert served_keys(shadowed) == served_keys(plain)
    assert any(key.startswith(b"shadow/explore/linear_ts/user/") for key in shadowed)


def test_shadow_state_lives_under_its_prefix_survives_a_restart_and_counts_each_event_once() -> None:
    config = parse_config(SHADOWS)
    table: dict[bytes, bytes] = {}
    worker = core(table, config)
    make = RecordMaker()
    worker.add_items(item_records(make, 30))
    slates = ranked(worker, request_records(make, 40, n_users=8, k=4))
    feedback = feedback_records(make, slates, seed=2)
    worker.learn(feedback)
    assert {key.split(b"/")[1] for key in table if key.startswith(b"shadow/")} == {b"explore", b"popular"}
    policy = LinearThompsonSampling()
    population = policy.decode_global(unwrap(table[b"shadow/explore/linear_ts/global/0"])[1])
    shown = sum(len(json.loads(r.value)["shown"]) for r in feedback if r.kind == "impressions")
    assert population.n_exposures == shown
    before = dict(table)
    restarted = core(table, config)  # a restart on the same state: the replayed feedback is skipped
    restarted.add_items(item_records(RecordMaker(), 30))
    restarted.learn(feedback)
    shadow_state = {k: unwrap(v)[1] for k, v in table.items() if k.startswith(b"shadow/")}
    assert shadow_state == {k: unwrap(v)[1] for k, v in before.items() if k.startswith(b"shadow/")}
    engine = restarted.shadows.engines(0).shadows[0].engine  # type: ignore[union-attr]
    assert engine.global_state.n_exposures == shown  # recovered from the table, not re-learned
    user = policy.decode_user(unwrap(table[b"shadow/explore/linear_ts/user/u1"])[1])
    served_user = policy.decode_user(unwrap(table[b"linear_ts/user/u1"])[1])
    assert user.n_exposures == served_user.n_exposures > 0  # the same feedback, once


def test_records_delivered_twice_in_one_list_count_once_in_the_shadows_too() -> None:
    """A list holding the second half of the feedback twice (as a seek back to the committed
    offsets can deliver it) leaves every state, served and shadow, as one delivery does."""
    config = parse_config(SHADOWS)
    states: list[dict[bytes, bytes]] = []
    for repeat_from in (None, 0):
        table: dict[bytes, bytes] = {}
        worker = core(table, config)
        make = RecordMaker()
        worker.add_items(item_records(make, 30))
        feedback = feedback_records(make, ranked(worker, request_records(make, 40, n_users=8, k=4)), seed=2)
        half = len(feedback) // 2
        assert worker.learn(feedback if repeat_from is None else [*feedback, *feedback[half:]]) == []
        assert worker.counts.balanced()
        states.append({key: unwrap(value)[1] for key, value in table.items()})
    once, twice = states
    policy = LinearThompsonSampling()
    for key in (b"linear_ts/global/0", b"shadow/explore/linear_ts/global/0"):
        assert policy.decode_global(twice[key]).n_exposures == policy.decode_global(once[key]).n_exposures > 0, key
    assert twice == once


def test_a_forgotten_user_is_forgotten_by_the_shadows_too() -> None:
    table: dict[bytes, bytes] = {}
    worker = core(table, parse_config(SHADOWS))
    make = RecordMaker()
    worker.add_items(item_records(make, 30))
    worker.learn(feedback_records(make, ranked(worker, request_records(make, 30, n_users=4, k=4)), seed=1))
    assert b"shadow/explore/linear_ts/user/u1" in table
    control = Record("control", "t.control", 0, 0, b"u1", encode_control(ForgetUser(user_id="u1")))
    assert worker.learn([control]) == []
    assert not [key for key in table if key.endswith(b"/user/u1")]


def test_the_leaderboard_scores_each_shadow_with_intervals_and_verdicts() -> None:
    worker = core({}, parse_config(SHADOWS))
    serve(worker, rounds=8, per_round=40)
    shadows = worker.shadows
    assert shadows is not None and shadows.counts.scored == 320 and shadows.counts.failed == 0
    board = build_standings(shadows.snapshot(), shadows.versions(), n_bootstrap=100)["default"]
    assert board["rounds"] == 320 and board["counts"]["inconsistent"] == 0 and board["counts"]["pending"] == 0
    assert {s["name"] for s in board["shadows"]} == {"explore", "popular"}
    for standing in board["shadows"]:
        dr = standing["estimates"]["dr"]
        assert 0.0 <= dr["ci_low"] <= dr["value"] <= dr["ci_high"] and dr["ci_high"] > dr["ci_low"]
        assert standing["diagnostics"]["dr"]["ess"] > 0 and standing["support"] == 1.0
    assert board["on_policy"]["value"] > 0


def test_a_failing_shadow_is_counted_and_serving_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr("streams.worker.shadows.score_shadow", broken)
    monkeypatch.setattr("streams.worker.shadows.learn_once", broken)
    worker = core({}, parse_config(SHADOWS))
    assert len(serve(worker, rounds=2, per_round=10)) == 20
    assert worker.shadows is not None and worker.shadows.counts.failed >= 2
    assert worker.counts.balanced()
