"""The worker's core without Kafka: dead letters, counts, and exactly-once state on replay."""

import gc
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from encoders.hashing import HashingEncoder
from online.config import SlatestreamConfig, parse_config
from online.events import Click, Impression, Item, RankRequest, ShownItem, Slate, SlateError, encode_event
from online.policies.linear_ts import LinearThompsonSampling
from streams.dead_letter import DeadLetter
from streams.testing import SharedTables
from streams.worker.core import Record, WorkerCore
from streams.worker.table_store import unwrap, wrap

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ENCODER = HashingEncoder(dim=8)


def embed(items: list[Item]) -> np.ndarray:
    return ENCODER.encode([i.text() for i in items])


def core(table: dict[bytes, bytes]) -> WorkerCore:
    return WorkerCore(SlatestreamConfig(), SharedTables(table), embed, dim=8)


def record(kind: str, offset: int, value: bytes, partition: int = 0, key: bytes = b"u1") -> Record:
    return Record(kind, f"t.{kind}", partition, offset, key, value)


def items() -> list[Record]:
    return [record("items", n, encode_event(Item(item_id=f"i{n}", fields={"title": f"red shoe {n}"}, time=T0)),
                   key=f"i{n}".encode()) for n in range(6)]


def feedback(n: int) -> tuple[list[Record], list[Record]]:
    impressions, clicks = [], []
    for step in range(n):
        shown = tuple(ShownItem(item_id=f"i{(step + p) % 6}", position=p) for p in range(3))
        impressions.append(record("impressions", step, encode_event(Impression(
            event_id=f"e{step}", request_id=f"r{step}", user_id="u1", shown=shown, time=T0))))
        clicks.append(record("clicks", step, encode_event(Click(
            event_id=f"c{step}", request_id=f"r{step}", user_id="u1", item_id=shown[0].item_id,
            time=T0 + timedelta(seconds=1)))))
    return impressions, clicks


def rank_all(worker: WorkerCore, n: int) -> None:
    requests = [record("requests", step, encode_event(RankRequest(request_id=f"r{step}", user_id="u1", k=3, time=T0)))
                for step in range(n)]
    slates, dead = worker.rank(requests)
    assert len(slates) == n and not dead


def ranked_core(table: dict[bytes, bytes], n: int = 8) -> WorkerCore:
    """A core over `table` with the items and n requests ranked (clicks on them are known)."""
    worker = core(table)
    worker.add_items(items())
    rank_all(worker, n)
    return worker


def test_bad_records_become_dead_letters_and_counts_balance() -> None:
    worker = core({})
    worker.add_items(items())
    rank_all(worker, 1)
    impressions, clicks = feedback(1)
    bad = [
        record("clicks", 10, b"{oops"),
        record("clicks", 11, encode_event(Click(event_id="x", request_id="never", user_id="u1", item_id="i1"))),
        record("clicks", 12, encode_event(Click(event_id="y", request_id="r0", user_id="u1", item_id="ghost",
                                                 time=T0))),
        record("impressions", 13, encode_event(RankRequest(request_id="q", user_id="u1"))),
    ]
    dead = worker.learn([*impressions, *clicks, *bad])
    assert sorted(d.error_type for d in dead) == [
        "EventDecodeError", "EventDecodeError", "UnknownItemError", "UnknownRequestError"]
    assert {d.offset for d in dead} == {10, 11, 12, 13}
    assert worker.counts.balanced()
    assert worker.counts.learned == 2 and worker.counts.dead_lettered == 4


def test_replayed_records_do_not_count_twice() -> None:
    impressions, clicks = feedback(8)
    once: dict[bytes, bytes] = {}
    ranked_core(once).learn([*impressions, *clicks])

    replayed: dict[bytes, bytes] = {}
    ranked_core(replayed).learn([*impressions[:5], *clicks[:3]])
    # a crash: the worker restarts and re-reads everything from before the last commit
    restarted = core(replayed)
    restarted.add_items(items())
    restarted.learn([*impressions, *clicks])
    assert restarted.counts.skipped_duplicates == 8
    policy = LinearThompsonSampling()
    ours = policy.decode_user(unwrap(replayed[b"linear_ts/user/u1"])[1])
    theirs = policy.decode_user(unwrap(once[b"linear_ts/user/u1"])[1])
    # A user's sums are float32 values, rounded after every batch, so the replay's other batch
    # split agrees to float32 precision of the largest sum; an event counted twice would add a
    # whole x x^T (counts are compared exactly).
    scale = 1e-6 * np.abs(theirs.gram_upper).max()
    np.testing.assert_allclose(ours.gram_upper, theirs.gram_upper, rtol=0, atol=scale)
    np.testing.assert_allclose(ours.response, theirs.response, rtol=0, atol=scale)
    assert ours.n_exposures == theirs.n_exposures == 24 and ours.reward_total == theirs.reward_total == 8
    ours_g = policy.decode_global(unwrap(replayed[b"linear_ts/global/0"])[1])
    theirs_g = policy.decode_global(unwrap(once[b"linear_ts/global/0"])[1])
    np.testing.assert_allclose(ours_g.gram_upper, theirs_g.gram_upper, rtol=0,
                               atol=1e-6 * np.abs(theirs_g.gram_upper).max())
    assert ours_g.n_exposures == theirs_g.n_exposures == 24


def test_a_replay_where_the_population_lags_the_user_counts_each_learned_event_once() -> None:
    """The changelog kept the user's state but an older population (2 of the user's 5
    impressions, none of its 3 clicks): on replay, impressions 2-4 and clicks 0-2 are learned
    by the population alone and the rest by both, yet each is counted once, per topic and in
    the live exposures and clicks."""
    impressions, clicks = feedback(8)
    replayed: dict[bytes, bytes] = {}
    second = core(replayed)
    second.add_items(items())
    rank_all(second, 8)
    second.learn(impressions[:2])
    older_population = replayed[b"linear_ts/global/0"]
    second.learn([*impressions[2:5], *clicks[:3]])
    replayed[b"linear_ts/global/0"] = older_population
    restarted = core(replayed)
    restarted.add_items(items())
    rank_all(restarted, 8)
    dead = restarted.learn([*impressions, *clicks])
    assert not dead and restarted.counts.balanced()
    counts = restarted.counts
    assert counts.by_topic[("impressions", "learned")] == 6 and counts.by_topic[("clicks", "learned")] == 8
    assert counts.learned == 14 and counts.skipped_duplicates == 2
    assert restarted.live == {("default", "linear_ts"): (18.0, 8.0)}


def test_records_delivered_twice_in_one_list_count_once() -> None:
    """Faust's seek back to the committed offsets after a recovery can hand a lane again what it
    already holds: a list with offsets 2-4 twice (and a click twice) learns each event once, in
    the population as in the user, and counts the second copies as skipped."""
    impressions, clicks = feedback(8)
    once: dict[bytes, bytes] = {}
    ranked_core(once).learn([*impressions, *clicks])

    twice: dict[bytes, bytes] = {}
    second = ranked_core(twice)
    dead = second.learn([*impressions[:5], *clicks[:2], *impressions[2:], *clicks[1:]])
    assert not dead and second.counts.balanced()
    assert second.counts.learned == 16 and second.counts.skipped_duplicates == 4
    assert second.live == {("default", "linear_ts"): (24.0, 8.0)}
    policy = LinearThompsonSampling()
    for key, decode in ((b"linear_ts/global/0", policy.decode_global), (b"linear_ts/user/u1", policy.decode_user)):
        ours, theirs = decode(unwrap(twice[key])[1]), decode(unwrap(once[key])[1])
        assert (ours.n_exposures, ours.reward_total) == (theirs.n_exposures, theirs.reward_total) == (24, 8), key
        scale = 1e-6 * np.abs(theirs.gram_upper).max()
        np.testing.assert_allclose(ours.gram_upper, theirs.gram_upper, rtol=0, atol=scale)
    assert unwrap(twice[b"linear_ts/global/0"])[0] == unwrap(once[b"linear_ts/global/0"])[0] == {0: 7, 1: 7}


def test_scenarios_from_a_configuration_share_state_and_unknown_ones_are_dead_lettered() -> None:
    config = parse_config({"scenarios": {
        "feed": {"slate_size": 3, "policy": {"name": "linear_ts"}},
        "ad_slot": {"slate_size": 2, "candidates": "request", "policy": {"name": "linear_ts"}},
    }})
    table: dict[bytes, bytes] = {}
    worker = WorkerCore(config, SharedTables(table), lambda items: ENCODER.encode([i.text() for i in items]), dim=8)
    worker.add_items(items())
    requests = [
        record("requests", 0, encode_event(RankRequest(request_id="r0", user_id="u1", scenario="feed", time=T0))),
        record("requests", 1, encode_event(RankRequest(request_id="r1", user_id="u1", scenario="ad_slot", time=T0,
                                                       candidates=("i0", "i1", "i2")))),
        record("requests", 2, encode_event(RankRequest(request_id="r2", user_id="u1", scenario="ad_slot", time=T0))),
        record("requests", 3, encode_event(RankRequest(request_id="r3", user_id="u1", scenario="email", time=T0))),
    ]
    answers, dead = worker.rank(requests)
    slates = [a for a in answers if isinstance(a, Slate)]
    assert [len(s.items) for s in slates] == [3, 2]  # each scenario's slate size
    assert [d.error_type for d in dead] == ["RankError", "RankError"]  # no candidates; not configured
    errors = [a for a in answers if isinstance(a, SlateError)]  # the caller hears why, on the slates topic
    assert [(e.request_id, e.error_type) for e in errors] == [("r2", "RankError"), ("r3", "RankError")]
    assert "takes its candidates from the request" in errors[0].reason and "'email'" in errors[1].reason
    shown = (ShownItem(item_id="i0", position=0), ShownItem(item_id="i1", position=1))
    learned = worker.learn([
        record("impressions", 0, encode_event(Impression(event_id="e0", request_id="r1", user_id="u1",
                                                         scenario="ad_slot", shown=shown, time=T0))),
        record("clicks", 0, encode_event(Click(event_id="c0", request_id="r1", user_id="u1", item_id="i0",
                                               scenario="ad_slot", time=T0))),
        record("impressions", 1, encode_event(Impression(event_id="e1", request_id="r0", user_id="u1",
                                                         scenario="email", shown=shown, time=T0))),
    ])
    assert [d.error_type for d in learned] == ["UnknownScenarioError"]
    # the ad slot's feedback went into the one state both scenarios share
    state = LinearThompsonSampling().decode_user(unwrap(table[b"linear_ts/user/u1"])[1])
    assert state.n_exposures == 2 and state.reward_total == 1
    assert worker.counts.balanced()
    # a list of one scenario is routed whole (WorkerCore._route): also when that scenario is unknown
    only_email = [record("impressions", 2 + n, encode_event(Impression(event_id=f"e{2 + n}", request_id="r0",
                                                                       user_id="u1", scenario="email", shown=shown,
                                                                       time=T0))) for n in range(2)]
    assert [d.error_type for d in worker.learn(only_email)] == ["UnknownScenarioError"] * 2
    assert LinearThompsonSampling().decode_user(unwrap(table[b"linear_ts/user/u1"])[1]).n_exposures == 2
    assert worker.counts.balanced()


def test_live_counts_sum_each_scenarios_exposures_and_rewards_in_mixed_and_single_scenario_lists() -> None:
    """`WorkerCore.live`: items shown and rewards per (scenario, policy), the same whether a
    list holds several scenarios (a loop per event) or one (C-level maps)."""
    config = parse_config({"scenarios": {
        "feed": {"slate_size": 3, "policy": {"name": "linear_ts"}},
        "ad_slot": {"slate_size": 2, "policy": {"name": "linear_ts"}},
    }})
    worker = WorkerCore(config, SharedTables({}), embed, dim=8)
    worker.add_items(items())
    worker.rank([record("requests", n, encode_event(RankRequest(request_id=f"r{n}", user_id="u1", scenario=scenario,
                                                                time=T0)))
                 for n, scenario in enumerate(["feed", "ad_slot"])])

    def impression(offset: int, scenario: str, n_shown: int) -> Record:
        shown = tuple(ShownItem(item_id=f"i{p}", position=p) for p in range(n_shown))
        return record("impressions", offset, encode_event(Impression(
            event_id=f"e{offset}", request_id="r0", user_id="u1", scenario=scenario, shown=shown, time=T0)))

    def click(offset: int, scenario: str, reward: float) -> Record:
        return record("clicks", offset, encode_event(Click(
            event_id=f"c{offset}", request_id="r1", user_id="u1", item_id="i0", scenario=scenario,
            reward=reward, time=T0)))

    assert not worker.learn([impression(0, "feed", 3), click(0, "ad_slot", 0.5), impression(1, "ad_slot", 2),
                             click(1, "feed", 2.0), impression(2, "feed", 1)])
    assert worker.live == {("feed", "linear_ts"): (4.0, 2.0), ("ad_slot", "linear_ts"): (2.0, 0.5)}
    assert not worker.learn([impression(3, "ad_slot", 2), click(2, "ad_slot", 0.25), click(3, "ad_slot", 1.0)])
    assert worker.live == {("feed", "linear_ts"): (4.0, 2.0), ("ad_slot", "linear_ts"): (4.0, 1.75)}
    assert worker.counts.by_topic[("impressions", "learned")] == 4
    assert worker.counts.by_topic[("clicks", "learned")] == 4 and worker.counts.balanced()


def test_clicks_are_checked_against_the_users_recent_requests() -> None:
    """At most `recent_requests` per user and none older than the TTL (event time): the
    worker's request memory grows with users, not with requests."""
    worker = WorkerCore(SlatestreamConfig(), SharedTables(), embed, dim=8, request_ttl_s=3600.0, recent_requests=3)
    worker.add_items(items())
    requests = [record("requests", n, encode_event(RankRequest(request_id=f"r{n}", user_id="u1", k=2,
                                                               time=T0 + timedelta(minutes=20 * n))))
                for n in range(5)]  # r0 .. r4, 20 minutes apart
    worker.rank(requests)

    def click(n: int, offset: int, after: timedelta) -> Record:
        return record("clicks", offset, encode_event(Click(event_id=f"c{n}", request_id=f"r{n}", user_id="u1",
                                                           item_id="i0", time=T0 + timedelta(minutes=20 * n) + after)))

    dead = worker.learn([click(1, 0, timedelta(0)),      # dropped: only the last 3 are kept
                         click(3, 1, timedelta(0)),      # known
                         click(4, 2, timedelta(hours=2))])  # known request, but clicked after the TTL
    assert [(d.error_type, d.offset) for d in dead] == [("UnknownRequestError", 0), ("UnknownRequestError", 2)]
    assert worker.counts.learned == 1 and worker.counts.balanced()


def test_a_click_whose_recent_requests_cannot_be_read_is_dead_lettered_with_the_reason() -> None:
    """A stored request list that does not decode costs its click only, with the codec's
    reason; a record keyed by another user beside it is dead-lettered with its own."""
    table: dict[bytes, bytes] = {}
    worker = core(table)
    worker.add_items(items())
    worker.rank([record("requests", n, encode_event(RankRequest(request_id=f"r{n}", user_id=user, k=2, time=T0)),
                        key=user.encode()) for n, user in enumerate(["u1", "u2"])])
    table[b"requests/u2"] = wrap({}, b"RIDS\x01" + b"\x00" * 7)  # not 16 bytes an id
    worker.partitions_changed()  # the decoded lists are read again

    def click(n: int, user: str, key: str) -> Record:
        return record("clicks", n, encode_event(Click(event_id=f"c{n}", request_id=f"r{n}", user_id=user,
                                                      item_id="i0", time=T0)), key=key.encode())

    dead = worker.learn([click(0, "u1", "u1"), click(1, "u2", "u2"), click(2, "u1", "u9")])
    assert [(d.offset, d.error_type) for d in dead] == [(1, "StateCodecError"), (2, "KeyMismatchError")]
    assert "not a stored list of recent ids" in dead[0].reason
    assert worker.counts.learned == 1 and worker.counts.balanced()


def test_recent_requests_are_read_again_when_dropped_from_memory_or_after_a_rebalance() -> None:
    """The decoded recent requests are a write-through cache of the table: a user dropped
    from it (least recently used) and a partition another worker wrote are read again."""
    table: dict[bytes, bytes] = {}
    worker = core(table)
    worker.requests.max_users = 1
    worker.add_items(items())

    def request(n: int, user: str) -> Record:
        return record("requests", n, encode_event(RankRequest(request_id=f"r{n}", user_id=user, k=2, time=T0)),
                      key=user.encode())

    def click(n: int, user: str) -> Record:
        return record("clicks", n, encode_event(Click(event_id=f"c{n}", request_id=f"r{n}", user_id=user,
                                                      item_id="i0", time=T0)), key=user.encode())

    worker.rank([request(0, "u1"), request(1, "u2")])  # u2 pushes u1 out of memory
    assert worker.learn([click(0, "u1"), click(1, "u2")]) == []
    other = core(table)  # the partition's next owner ranks a request of u1
    other.add_items(items())
    other.rank([request(2, "u1")])
    worker.partitions_changed()  # ... and the partition comes back
    assert worker.learn([click(2, "u1")]) == []
    assert [d.error_type for d in worker.learn([click(3, "u1")])] == ["UnknownRequestError"]
    assert worker.counts.learned == 3 and worker.counts.balanced()


class WriteLog(dict[bytes, bytes]):
    """A table that records the key of every write."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.written: list[bytes] = []

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.written.append(key)
        super().__setitem__(key, value)


def test_a_replayed_batch_resends_the_users_recent_items_with_its_state() -> None:
    """After a crash the changelog may lack what RocksDB holds: a batch learned before is
    skipped, and the user's state and its recent items (the filters) are written again."""
    config = parse_config({"scenarios": {"default": {"slate_size": 3, "policy": {"name": "linear_ts"},
                                                     "filters": {"exclude_shown_within_s": 3600}}}})
    impressions, clicks = feedback(2)
    table = WriteLog()
    first = WorkerCore(config, SharedTables(table), embed, dim=8)
    first.add_items(items())
    rank_all(first, 2)
    first.learn([*impressions, *clicks])
    memory_key = b"linear_ts/objectives/user/u1"
    assert memory_key in table
    restarted = WorkerCore(config, SharedTables(WriteLog(table)), embed, dim=8)
    restarted.add_items(items())
    replay_table = restarted.tables.table
    assert isinstance(replay_table, WriteLog)
    replay_table.written.clear()
    restarted.learn([*impressions, *clicks])
    assert restarted.counts.skipped_duplicates == 4
    assert {memory_key, b"linear_ts/user/u1"} <= set(replay_table.written)
    assert replay_table[memory_key] == table[memory_key]


def test_a_restarted_worker_loads_the_exposure_windows_of_its_partitions() -> None:
    config = parse_config({"scenarios": {"default": {"slate_size": 3, "policy": {"name": "linear_ts"},
                                                     "objectives": {"fairness": 1.0}}}})
    impressions, clicks = feedback(3)
    table: dict[bytes, bytes] = {}
    first = WorkerCore(config, SharedTables(table), embed, dim=8)
    first.add_items(items())
    rank_all(first, 3)
    first.learn([*impressions, *clicks])
    restarted = WorkerCore(config, SharedTables(dict(table)), embed, dim=8)
    restarted.add_items(items())
    ours, theirs = (worker.engine(0).objectives for worker in (restarted, first))
    assert ours is not None and theirs is not None
    rows = first.catalog.rows([f"i{n}" for n in range(6)])
    assert theirs.memory.item_exposure.counts(rows).sum() == 9
    np.testing.assert_array_equal(ours.memory.item_exposure.counts(restarted.catalog.rows([f"i{n}" for n in range(6)])),
                                  theirs.memory.item_exposure.counts(rows))


def test_windows_are_snapshotted_before_the_partitions_move() -> None:
    """Within windows_snapshot_s of the last snapshot, a rebalance still hands the next owner
    the windows as they are (the worker snapshots before partitions_changed)."""
    config = parse_config({"scenarios": {"default": {"slate_size": 3, "policy": {"name": "linear_ts"},
                                                     "objectives": {"fairness": 1.0, "windows_snapshot_s": 3600}}}})
    impressions, _ = feedback(4)
    table: dict[bytes, bytes] = {}
    worker = WorkerCore(config, SharedTables(table), embed, dim=8)
    worker.add_items(items())
    rank_all(worker, 4)
    worker.learn(impressions[:2])  # the first batch is snapshotted at once
    worker.learn(impressions[2:])  # the same event time: no snapshot due

    def exposures_seen_by_a_new_owner() -> float:
        owner = WorkerCore(config, SharedTables(dict(table)), embed, dim=8)
        owner.add_items(items())
        objectives = owner.engine(0).objectives
        assert objectives is not None
        return float(objectives.memory.item_exposure.counts(owner.catalog.rows([f"i{n}" for n in range(6)])).sum())

    assert exposures_seen_by_a_new_owner() == 6
    worker.snapshot_windows()
    worker.partitions_changed()
    assert exposures_seen_by_a_new_owner() == 12


def test_a_learn_call_runs_with_the_collector_off_and_turns_it_back_on(monkeypatch: pytest.MonkeyPatch) -> None:
    worker = core({})
    during: list[bool] = []

    def learn_in_order(records: list[Record]) -> list[DeadLetter]:
        during.append(gc.isenabled())
        return []

    monkeypatch.setattr(worker, "_learn_in_order", learn_in_order)
    assert worker.learn([]) == [] and during == [False] and gc.isenabled()
