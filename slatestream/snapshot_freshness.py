"""Whether the partition copies `evaluate --snapshot` reads are as far as the state changelog.

A worker data directory holds each partition as its worker last wrote it. When only one copy of
a partition is given, nothing in the directories says whether the deployment learned more since:
after a rebalance the partition's new owner keeps learning in a directory that was not given,
and a worker's writes after its last memtable flush are only in the changelog (the worker writes
without a write-ahead log). The changelog (`<app id>-state-changelog`, compacted) holds every
partition's latest population state ("<policy>/global/<partition>") with the offsets it includes
(streams.worker.table_store): a served copy whose population is behind it on some feedback topic
is not the state the deployment now holds. `check_against_changelog` compares them; the
evaluation reports what is behind (it still evaluates the copy: a fixed state is a fair thing to
evaluate, as long as the report says which one it is).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from slatestream.partition_copies import AppliedByPolicy, PartitionCopy
from slatestream.worker_snapshot import topic_kind
from streams.settings import StreamSettings
from streams.state_changelog import latest_of_keys, state_changelog_topic
from streams.worker.table_store import unwrap


@dataclass(frozen=True)
class Lag:
    """A served copy behind the changelog: `policy`'s population state of `partition` includes
    `topic` events up to offset `copy` in the copy read, up to `changelog` in the changelog."""

    partition: int
    policy: str
    topic: str
    copy: int
    changelog: int

    def to_dict(self) -> dict[str, Any]:
        return {"partition": self.partition, "policy": self.policy, "topic": self.topic, "copy": self.copy,
                "changelog": self.changelog}


@dataclass(frozen=True)
class FreshnessCheck:
    """What the changelog said of the served copies: `topic` read, `logged` what its latest
    population states include (partition -> `AppliedByPolicy`), `lags` the copies behind it."""

    topic: str
    logged: dict[int, AppliedByPolicy]
    lags: list[Lag]

    def to_dict(self) -> dict[str, Any]:
        """For evaluation.json."""
        return {"topic": self.topic, "applied_offsets": {str(p): a for p, a in sorted(self.logged.items())},
                "behind": [lag.to_dict() for lag in self.lags]}

    def describe(self, served: Mapping[int, PartitionCopy]) -> str:
        """One sentence: every copy as far as the changelog, or which are behind and by what."""
        if not self.logged:
            return f"not checked: {self.topic} holds no population state of these policies"
        if not self.lags:
            return f"every partition's copy is as far as {self.topic}"
        behind = sorted({lag.partition for lag in self.lags})
        details = "; ".join(f"partition {lag.partition} ({served[lag.partition].directory}): {lag.policy} {lag.topic} "
                            f"to offset {lag.copy:,}, the changelog to {lag.changelog:,}" for lag in self.lags)
        return (f"BEHIND {self.topic} in partitions {', '.join(map(str, behind))}, so not the state the deployment "
                f"now holds ({details}): give the data directory of each partition's current owner, after stopping "
                "it")


def logged_populations(settings: StreamSettings, partitions: Sequence[int], policies: Sequence[str],
                       timeout_s: float = 30.0) -> dict[int, AppliedByPolicy]:
    """partition -> what the changelog's latest population state of each policy includes
    (`AppliedByPolicy`; a policy with no population record there, or a tombstone, is absent)."""
    wanted = {p: [f"{policy}/global/{p}".encode() for policy in policies] for p in partitions}
    entries = latest_of_keys(settings, wanted, timeout_s=timeout_s)
    logged: dict[int, AppliedByPolicy] = {}
    for partition in partitions:
        for policy in policies:
            entry = entries.get(f"{policy}/global/{partition}".encode())
            if entry is None or entry.value is None:
                continue
            offsets = unwrap(entry.value)[0]
            logged.setdefault(partition, {})[policy] = {topic_kind(i): offset for i, offset in sorted(offsets.items())}
    return logged


def lags_of(served: Mapping[int, PartitionCopy], logged: Mapping[int, AppliedByPolicy]) -> list[Lag]:
    """Every (partition, policy, topic) where the changelog includes more than the served copy."""
    lags = []
    for partition, copy in sorted(served.items()):
        for policy, topics in sorted(logged.get(partition, {}).items()):
            for topic, offset in sorted(topics.items()):
                if offset > copy.offset(policy, topic):
                    lags.append(Lag(partition, policy, topic, copy.offset(policy, topic), offset))
    return lags


def check_against_changelog(settings: StreamSettings, served: Mapping[int, PartitionCopy],
                            policies: Sequence[str], timeout_s: float = 30.0) -> FreshnessCheck:
    """The served copies compared with the changelog's latest population states."""
    logged = logged_populations(settings, sorted(served), policies, timeout_s)
    return FreshnessCheck(state_changelog_topic(settings), logged, lags_of(served, logged))

