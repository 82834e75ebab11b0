"""bench/worker_throughput.py's in-process baseline learns what it times (it once timed dead
letters: its item records lacked their key, so every item, impression and click was refused)."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

import pytest

from streams.testing import SharedTables, make_workload
from streams.worker.collector import CollectorClock
from streams.worker.core import Record, WorkerCore
from streams.worker.paths import BatchStats

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from host_state import filesystem_of, steal_s
from worker_throughput import clicks_beyond_recent

from bench.broker_phases import GroupsLearned, groups_learned
from bench.worker_baselines import (
    batch_groups,
    in_process_learn,
    learned_before,
    learning_budget,
    partition_groups,
    rank_in_process,
    steady_after,
)


def test_in_process_learn_learns_every_record() -> None:
    workload = make_workload(n_users=20, n_items=30, n_requests=300, shown=3, click_rate=0.5, seed=0)
    ranked = rank_in_process(workload, 2)
    assert len(ranked.feedback) == len(workload.feedback()) and len(ranked.items) == len(workload.items)
    cores: list[WorkerCore] = []
    spent = in_process_learn(ranked, 100, prepare=cores.append)
    assert 0 < spent.cpu_s and 0 < spent.seconds
    counts = cores[0].counts
    assert counts.learned == len(workload.feedback()) and counts.dead_lettered == 0
    assert counts.ranked == 0  # a fresh core: the ranking is in the state it starts from, not in memory
    in_process_learn(ranked, 100, prepare=cores.append, group=7)  # the worker's groups, from the same state
    assert cores[1].counts.learned == len(workload.feedback()) and cores[1].counts.dead_lettered == 0
    with pytest.raises(RuntimeError, match="did not learn"):  # without the ranked state clicks are unknown
        in_process_learn(ranked._replace(table={}), 100)


def test_a_warm_workload_is_the_rest_of_the_feedback_over_the_state_the_first_part_left() -> None:
    """`learned_before` (--warm): the feedback after the first `count` records, over a state that
    holds the first part's users' recent event ids (a cold one holds none), from which a fresh core
    learns the rest whole; and its first part learned again from that state is all skipped."""
    workload = make_workload(n_users=20, n_items=30, n_requests=300, shown=3, click_rate=0.5, seed=0)
    ranked = rank_in_process(workload, 2)
    half = len(ranked.feedback) // 2
    warm = learned_before(ranked, half)
    assert warm.feedback == ranked.feedback[half:] and warm.items == ranked.items
    first_users = {f"events/{record.key.decode()}".encode() for record in ranked.feedback[:half] if record.key}
    assert first_users <= warm.table.keys() and not first_users & ranked.table.keys()
    cores: list[WorkerCore] = []
    in_process_learn(warm, 100, prepare=cores.append)
    assert cores[0].counts.learned == len(warm.feedback) and cores[0].counts.dead_lettered == 0
    again = WorkerCore(ranked.config, SharedTables(dict(warm.table)), lambda items: [[0.0] * 32 for _ in items], 32, 0)
    for records in batch_groups(ranked.feedback[:half], 100):
        again.learn(records)
    assert again.counts.learned == 0 and again.counts.skipped_duplicates == half


def test_a_steady_workload_is_learned_after_its_first_part_by_the_same_core() -> None:
    """`steady_after` (--steady): one core learns the first part untimed, then the rest; the
    first part's users are then in its memory (their recent event ids read once from the state,
    at the first part), and nothing is learned twice."""
    workload = make_workload(n_users=20, n_items=30, n_requests=300, shown=3, click_rate=0.5, seed=0)
    ranked = rank_in_process(workload, 2)
    half = len(ranked.feedback) // 2
    steady = steady_after(ranked, half)
    assert steady.feedback == ranked.feedback[half:] and list(steady.learned_first) == ranked.feedback[:half]
    assert steady.table == ranked.table  # the state before either part: the first is learned by the core itself
    cores: list[WorkerCore] = []
    in_process_learn(steady, 100, prepare=cores.append, group=7)
    counts = cores[0].counts
    assert counts.learned == len(ranked.feedback) and counts.dead_lettered == 0 and counts.skipped_duplicates == 0
    first_users = {record.key.decode() for record in ranked.feedback[:half] if record.key}
    assert {user for _, user in cores[0].events._users} >= first_users


def test_in_process_learn_settles_the_collector_times_it_and_gives_the_process_its_thresholds_back() -> None:
    workload = make_workload(n_users=20, n_items=30, n_requests=300, shown=3, click_rate=0.5, seed=0)
    ranked = rank_in_process(workload, 2)
    thresholds, seen = gc.get_threshold(), []
    clock = CollectorClock()
    try:
        in_process_learn(ranked, 100, prepare=lambda core: seen.append(gc.get_threshold()), young_threshold=5,
                         clock=clock)
        during = clock.passes[0]
        assert gc.get_threshold() == thresholds and gc.callbacks.count(clock._on_pass) == 0
    finally:
        gc.unfreeze()
    assert seen == [thresholds] and during > 0  # young passes between learn calls (off within one)


def test_steal_time_is_read_from_the_stat_files_first_line(tmp_path: Path) -> None:
    """The "steal" column, in clock ticks: 8th after "cpu"; 0.0 without the file or column."""
    stat = tmp_path / "stat"
    stat.write_text("cpu  7593192 11590 857800 7298279 17467 0 33695 250 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n")
    assert steal_s(stat) == pytest.approx(250 / os.sysconf("SC_CLK_TCK"))
    stat.write_text("cpu  1 2 3 4\n")
    assert steal_s(stat) == 0.0 and steal_s(tmp_path / "missing") == 0.0
    assert steal_s() >= 0.0  # this machine's


def test_the_filesystem_printed_for_a_directory_is_that_of_the_longest_mount_above_it(tmp_path: Path) -> None:
    """What --broker-dir / --store-dir print beside each directory."""
    mounts = tmp_path / "mounts"
    mounts.write_text("/dev/vda / ext4 rw 0 0\ntmpfs /dev/shm tmpfs rw 0 0\ntmpfs /dev/shmx tmpfs rw 0 0\n")
    assert filesystem_of(Path("/dev/shm/tmpabc"), mounts) == "tmpfs"
    assert filesystem_of(Path("/dev/shm"), mounts) == "tmpfs"
    assert filesystem_of(Path("/dev/shmother/x"), mounts) == "ext4"
    assert filesystem_of(Path("/tmp/x"), mounts) == "ext4"
    assert filesystem_of(Path("/tmp/x"), tmp_path / "missing") == "unknown"


def test_clicks_beyond_the_recent_requests_cap_are_counted_before_any_broker_starts() -> None:
    """--requests 90000 at 2,000 users once ran a whole broker phase to be refused at the end."""
    workload = make_workload(n_users=2, n_items=30, n_requests=40, shown=3, click_rate=1.0, seed=0)
    per_user = {user: sum(r.user_id == user for r in workload.requests) for user in ("u0", "u1")}
    cap = min(per_user.values()) - 5
    expected = sum(n - cap for n in per_user.values())  # click_rate 1: every request has a click
    assert clicks_beyond_recent(workload, cap) == expected > 0
    assert clicks_beyond_recent(workload, max(per_user.values())) == 0


def test_the_learning_budget_is_the_goals_time_an_event_less_consuming_and_decoding() -> None:
    """Peer 50,000/s: 1.5x is 75,000/s, 13.3 us an event; the decode loop at 200,000/s takes 5 us
    of it; learning in process at 40,000/s takes 25 us."""
    budget = learning_budget(peer_rate=50_000, decode_rate=200_000, core_rate=40_000)
    assert budget["per_event"] == pytest.approx(1e6 / 75_000)
    assert budget["consume_decode"] == pytest.approx(5.0)
    assert budget["left"] == pytest.approx(1e6 / 75_000 - 5.0)
    assert budget["learning"] == pytest.approx(25.0)


def test_partition_groups_give_each_learn_call_size_records_of_one_partition_in_order() -> None:
    records = [Record("clicks", "clicks", n % 3 if n < 9 else 0, n, b"u", b"{}") for n in range(14)]
    groups = partition_groups(records, 2)
    assert [[r.offset for r in g] for g in groups] == [[0, 3], [1, 4], [2, 5], [6, 9], [7], [8], [10, 11], [12, 13]]
    assert [[r.offset for r in g] for g in batch_groups(records, 4)] == [[0, 3], [1], [2], [4, 7], [5], [6],
                                                                        [8], [9, 10, 11], [12, 13]]
    assert sorted(r.offset for g in groups for r in g) == list(range(14))


def test_the_partition_groups_are_read_from_the_workers_batch_line() -> None:
    """The line as the worker writes it (streams.worker.paths.BatchStats), so a change of its
    wording fails here, not in a bench run."""
    stats = BatchStats(group_name="partition groups learned")
    stats.add(105_058, 2.25)
    for records in (2, *[5_253] * 19):  # a small first list, then full ones
        stats.add_group(0.1, 0.0875, records)
    line = f"batches requests: {BatchStats()}; feedback: {stats}"
    assert groups_learned(line) == GroupsLearned(20, 2.0, 1.75, 5_253)
    with pytest.raises(RuntimeError, match="no partition groups"):
        groups_learned(f"batches requests: {BatchStats()}; feedback: {BatchStats(group_name='groups')}")
