"""Which copy of a partition's state to read when several workers' data directories hold one.

A worker keeps each partition it owns in its own data directory; after a rebalance the old
owner's directory still holds the partition as it was when it was taken away (a stale copy),
while the new owner recovered it from the changelog and kept learning. Every population state
("<policy>/global/<partition>") records, per feedback topic, the offset of the last event it
includes (streams.worker.table_store, staged by streams.worker.core), and those offsets only grow
as the partition learns: the copy at least as far on every (policy, topic) is the newer one.
Two copies each ahead on some topic (two owners learning at once, or copies of different
deployments) have no newer one and are refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

AppliedByPolicy = dict[str, dict[str, int]]
"""policy -> feedback topic kind ("impressions", "clicks") -> offset of the last event its
population state includes (a policy or topic with nothing applied is absent)."""


class WorkerSnapshotError(ValueError):
    """A worker data directory that cannot be evaluated as it is (the message says why)."""


@dataclass(frozen=True)
class PartitionCopy:
    """One partition's RocksDB in one worker's data directory.

    partition: the Kafka partition; directory: the worker's data directory; path: its
    `state-<partition>.db`; applied: what its population states include (`AppliedByPolicy`).
    """

    partition: int
    directory: Path
    path: Path
    applied: AppliedByPolicy

    def offset(self, policy: str, topic: str) -> int:
        """The offset of the last `topic` event `policy`'s population state includes (-1: none)."""
        return self.applied.get(policy, {}).get(topic, -1)

    def at_least_as_far_as(self, other: PartitionCopy) -> bool:
        """Whether this copy includes, on every (policy, topic) either records, at least what `other` does."""
        keys = {(policy, topic) for copy in (self, other) for policy, topics in copy.applied.items()
                for topic in topics}
        return all(self.offset(*key) >= other.offset(*key) for key in keys)

    def to_dict(self) -> dict[str, Any]:
        return {"directory": str(self.directory), "applied_offsets": self.applied}


def newest_copy(copies: Sequence[PartitionCopy]) -> PartitionCopy:
    """The copy at least as far as every other (the first such, in the order given, when copies
    include the same events); WorkerSnapshotError naming the directories when two copies are each
    ahead on some topic."""
    newest = copies[0]
    for copy in copies[1:]:
        if newest.at_least_as_far_as(copy):
            continue
        if not copy.at_least_as_far_as(newest):
            raise WorkerSnapshotError(
                f"partition {copy.partition} is in {newest.directory} and in {copy.directory}, and neither copy is "
                f"ahead on every topic (applied offsets {_offsets_text(newest)} vs {_offsets_text(copy)}): give only "
                "the directory of the worker that owned it last")
        newest = copy
    return newest


def _offsets_text(copy: PartitionCopy) -> str:
    """"policy impressions 12, clicks 3" per policy, or "none"."""
    text = "; ".join(f"{policy} " + ", ".join(f"{topic} {offset}" for topic, offset in sorted(topics.items()))
                     for policy, topics in sorted(copy.applied.items()))
    return text or "none"


def describe_sources(served: dict[int, PartitionCopy], set_aside: Sequence[PartitionCopy]) -> str:
    """One line for the report: which directory served which partitions, and the older copies set
    aside (with the offsets that made them older)."""
    by_directory: dict[Path, list[int]] = {}
    for partition, copy in sorted(served.items()):
        by_directory.setdefault(copy.directory, []).append(partition)
    text = "; ".join(f"partition{'s' if len(parts) > 1 else ''} {', '.join(map(str, parts))} from {directory}"
                     for directory, parts in by_directory.items())
    for copy in set_aside:
        newer = served[copy.partition]
        text += (f"; partition {copy.partition}'s older copy in {copy.directory} set aside ({_offsets_text(copy)}; "
                 f"served: {_offsets_text(newer)})")
    return text
