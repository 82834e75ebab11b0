"""Served partition copies compared with the state changelog's population states
(slatestream.snapshot_freshness; against a real broker: tests/integration/test_evaluate_snapshot_changelog.py)."""

from __future__ import annotations

from pathlib import Path

from slatestream.partition_copies import PartitionCopy
from slatestream.snapshot_freshness import FreshnessCheck, Lag, lags_of


def copy(partition: int, impressions: int, clicks: int) -> PartitionCopy:
    return PartitionCopy(partition, Path(f"/data/w{partition}"), Path(f"/data/w{partition}/state.db"),
                         {"linear_ts": {"impressions": impressions, "clicks": clicks}})


def test_a_copy_is_behind_where_the_changelog_includes_more_of_some_topic() -> None:
    served = {0: copy(0, 10, 4), 1: copy(1, 20, 9), 2: copy(2, 5, 2)}
    logged = {0: {"linear_ts": {"impressions": 10, "clicks": 4}},  # as far
              1: {"linear_ts": {"impressions": 20, "clicks": 11}},  # clicks behind
              2: {"linear_ts": {"impressions": 3, "clicks": 2},  # ahead
                  "hybrid_ts": {"impressions": 0}}}  # a policy the copy has no population of
    assert lags_of(served, logged) == [Lag(1, "linear_ts", "clicks", 9, 11), Lag(2, "hybrid_ts", "impressions", -1, 0)]


def test_the_report_line_names_each_lag_or_says_all_are_as_far() -> None:
    served = {0: copy(0, 10, 4), 1: copy(1, 20, 9)}
    as_far = FreshnessCheck("app-state-changelog", {0: {"linear_ts": {"impressions": 10}}}, [])
    assert as_far.describe(served) == "every partition's copy is as far as app-state-changelog"
    behind = FreshnessCheck("app-state-changelog", {1: {"linear_ts": {"clicks": 1_500}}},
                            [Lag(1, "linear_ts", "clicks", 9, 1_500)])
    line = behind.describe(served)
    assert line.startswith("BEHIND app-state-changelog in partitions 1")
    assert "partition 1 (/data/w1): linear_ts clicks to offset 9, the changelog to 1,500" in line
    assert behind.to_dict()["behind"] == [{"partition": 1, "policy": "linear_ts", "topic": "clicks", "copy": 9,
                                           "changelog": 1_500}]
    nothing = FreshnessCheck("app-state-changelog", {}, [])
    assert nothing.describe(served).startswith("not checked: app-state-changelog holds no population state")
