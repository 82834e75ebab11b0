"""A worker's learned state read from its data directory, for `slatestream evaluate --snapshot`.

The worker (streams.worker) keeps its state in one RocksDB per Kafka partition it holds,
`<SLATESTREAM_STORE_DIR>/v1/tables/state-<partition>.db` (Faust's rocksdb:// store, raw keys),
each value prefixed with the offsets it includes (streams.worker.table_store). A partition holds
the states of the users whose records are keyed to it and its own population state
"<policy>/global/<partition>", learned from those users' feedback only; a request is ranked with
the global and user state of its user's partition (streams.worker.core). `open_worker_snapshot`
opens every partition read-only and returns an `online.evaluation.snapshots.ShardedSnapshot`
that routes each user as Kafka's default partitioner does (murmur2 of the UTF-8 user id, modulo
the partition count: streams.topics), so the evaluation ranks as the worker would.

A deployment of several workers keeps each partition in the data directory of the worker that
owns it: `open_worker_snapshots` takes every worker's directory, and where a partition is in two
(an old owner's stale copy after a rebalance) reads the newer copy by the offsets its population
states include (`slatestream.partition_copies`); `WorkerSnapshot` says which directory served
each partition.

Read-only opening (rocksdict `AccessType.read_only()`) takes no lock and never writes, so it
works beside a running worker; but the worker writes without a write-ahead log, so a running
worker's writes since its last memtable flush are not on disk yet: stop it (a clean stop flushes)
to evaluate the state it serves.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from rocksdict import AccessType, Options, Rdict

from online.evaluation.snapshots import ShardedSnapshot
from slatestream.partition_copies import (
    AppliedByPolicy,
    PartitionCopy,
    WorkerSnapshotError,
    describe_sources,
    newest_copy,
)
from streams.topics import partition_of
from streams.worker.table_store import FEEDBACK_TOPICS, unwrap

TABLES_DIR = Path("v1") / "tables"
"""Where Faust keeps the worker's tables under its data directory."""
PARTITION_DB = re.compile(r"state-(\d+)\.db")
ROUTING_SAMPLE = 50
"""Users per partition whose partition is checked against the partitioner when opening."""


__all__ = ["PartitionSnapshotStore", "WorkerSnapshot", "WorkerSnapshotError", "open_worker_snapshot",
           "open_worker_snapshots", "topic_kind", "worker_partitions"]


def worker_partitions(directory: Path) -> dict[int, Path]:
    """partition -> its RocksDB directory in a worker's data directory ({} when `directory` is
    not one)."""
    tables = directory / TABLES_DIR
    if not tables.is_dir():
        return {}
    found = {}
    for path in tables.iterdir():
        match = PARTITION_DB.fullmatch(path.name)
        if match and path.is_dir():
            found[int(match.group(1))] = path
    return found


class PartitionSnapshotStore:
    """A read-only StateStore over one partition's RocksDB, values without their offsets header.

    Args:
        path: the partition's RocksDB directory (`state-<p>.db`).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = Rdict(str(path), options=Options(raw_mode=True), access_type=AccessType.read_only())

    def get(self, key: str) -> bytes | None:
        value = self._db.get(key.encode())
        return None if value is None else self._inner(key, bytes(value))

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return [self.get(key) for key in keys]

    def _inner(self, key: str, value: bytes) -> bytes:
        try:
            return unwrap(value)[1]
        except ValueError as error:
            raise WorkerSnapshotError(f"{self.path}: {key!r} is not a worker state value ({error})") from error

    def copy_of(self, directory: Path, partition: int, policies: Sequence[str]) -> PartitionCopy:
        """This partition's copy in `directory`, with what `policies`' population states
        ("<policy>/global/<partition>") include per feedback topic."""
        applied: AppliedByPolicy = {}
        for policy in policies:
            key = f"{policy}/global/{partition}"
            value = self._db.get(key.encode())
            if value is None:
                continue
            try:
                offsets = unwrap(bytes(value))[0]
            except ValueError as error:
                raise WorkerSnapshotError(f"{self.path}: {key!r} is not a worker state value ({error})") from error
            applied[policy] = {topic_kind(index): offset for index, offset in sorted(offsets.items())}
        return PartitionCopy(partition, directory, self.path, applied)

    def put(self, key: str, value: bytes) -> None:
        raise TypeError(f"{self.path}: a worker snapshot is read-only")

    def put_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        raise TypeError(f"{self.path}: a worker snapshot is read-only")

    def delete(self, key: str) -> None:
        raise TypeError(f"{self.path}: a worker snapshot is read-only")

    def scan_prefix(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        raw_prefix = prefix.encode()
        for key, value in self._db.items(from_key=raw_prefix):
            if not isinstance(key, bytes):  # raw mode: every key comes back as bytes
                raise TypeError(f"{self.path}: a key is {type(key).__name__}, not bytes (raw mode)")
            if not key.startswith(raw_prefix):
                break
            if bytes(value).startswith(b"SSOF"):  # Faust's own keys (its changelog offset) are not state
                yield key.decode(), unwrap(bytes(value))[1]

    def close(self) -> None:
        self._db.close()


@dataclass(frozen=True)
class WorkerSnapshot:
    """The workers' state: `sharded` reads each partition from `stores` (open: the caller closes
    them); `served` says which copy (directory) served each partition, `set_aside` the older
    copies not read."""

    sharded: ShardedSnapshot
    stores: list[PartitionSnapshotStore]
    served: dict[int, PartitionCopy]
    set_aside: list[PartitionCopy]

    def to_dict(self) -> dict[str, Any]:
        """For evaluation.json: partition -> {directory, applied_offsets}, and the copies set aside."""
        return {"partitions": {str(p): copy.to_dict() for p, copy in sorted(self.served.items())},
                "set_aside": [{"partition": copy.partition, **copy.to_dict()} for copy in self.set_aside]}

    def describe(self) -> str:
        """Which directory served which partitions, and the copies set aside (one line)."""
        return describe_sources(self.served, self.set_aside)


def topic_kind(index: int) -> str:
    """The feedback topic kind of an applied-offsets index (streams.worker.table_store.TOPIC_INDEX)."""
    return FEEDBACK_TOPICS[index] if 0 <= index < len(FEEDBACK_TOPICS) else f"topic-{index}"


def open_worker_snapshot(directory: Path, partitions: int,
                         policy: str) -> tuple[ShardedSnapshot, list[PartitionSnapshotStore]]:
    """One worker's data directory as a ShardedSnapshot and its opened stores (the caller closes
    them): `open_worker_snapshots` of that one directory."""
    snapshot = open_worker_snapshots([directory], partitions, (policy,))
    return snapshot.sharded, snapshot.stores


def open_worker_snapshots(directories: Sequence[Path], partitions: int, policies: Sequence[str]) -> WorkerSnapshot:
    """The state that the data directories of a deployment's workers hold together, as a
    ShardedSnapshot over `partitions` partitions (the workers' SLATESTREAM_PARTITIONS) that reads
    `policies`' keys. A partition found in several directories (an old owner's stale copy after a
    rebalance) is read from the copy whose population states are at least as far on every topic
    (`newest_copy`). WorkerSnapshotError when a directory is not a worker's, holds a partition
    beyond `partitions`, when no directory holds some partition, when two copies are not
    comparable, or when a user of a policy sits in a partition the partitioner puts elsewhere."""
    found = _partition_paths(directories, partitions)
    stores: list[PartitionSnapshotStore] = []
    try:
        copies: dict[int, list[tuple[PartitionCopy, PartitionSnapshotStore]]] = {}
        for partition, places in sorted(found.items()):
            for directory, path in places:
                store = PartitionSnapshotStore(path)
                stores.append(store)
                copies.setdefault(partition, []).append((store.copy_of(directory, partition, policies), store))
        served: dict[int, tuple[PartitionCopy, PartitionSnapshotStore]] = {}
        for partition, candidates in copies.items():
            chosen = newest_copy([copy for copy, _ in candidates])
            served[partition] = next(pair for pair in candidates if pair[0] is chosen)
        for partition, (_, store) in served.items():
            for policy in policies:
                _check_routing(store, partition, partitions, policy)
    except Exception as error:
        for store in stores:
            store.close()
        if isinstance(error, WorkerSnapshotError):
            raise
        raise WorkerSnapshotError(f"{', '.join(map(str, directories))}: cannot open the workers' state "
                                  f"({error})") from error
    kept = [store for _, store in served.values()]
    for store in stores:
        if all(store is not other for other in kept):
            store.close()
    set_aside = [copy for candidates in copies.values() for copy, _ in candidates
                 if copy is not served[copy.partition][0]]
    sharded = ShardedSnapshot({str(p): store for p, (_, store) in sorted(served.items())},
                              lambda user_id: str(partition_of(user_id, partitions)))
    return WorkerSnapshot(sharded, kept, {p: copy for p, (copy, _) in served.items()}, set_aside)


def _partition_paths(directories: Sequence[Path], partitions: int) -> dict[int, list[tuple[Path, Path]]]:
    """partition -> (data directory, its RocksDB) of every copy, in the directories' order;
    WorkerSnapshotError for a directory given twice or that is no worker's, a partition beyond
    `partitions`, or one that no directory holds."""
    resolved = [directory.resolve() for directory in directories]
    if len(set(resolved)) != len(resolved):
        raise WorkerSnapshotError(f"{', '.join(map(str, directories))}: a data directory is given twice")
    found: dict[int, list[tuple[Path, Path]]] = {}
    for directory in directories:
        held = worker_partitions(directory)
        if not held:
            raise WorkerSnapshotError(f"{directory}: not a worker data directory (no {TABLES_DIR}/state-<p>.db)")
        beyond = sorted(p for p in held if p >= partitions)
        if beyond:
            raise WorkerSnapshotError(f"{directory} holds partitions {beyond}, beyond the {partitions} of "
                                      "SLATESTREAM_PARTITIONS: set it to the worker's")
        for partition, path in sorted(held.items()):
            found.setdefault(partition, []).append((directory, path))
    missing = sorted(set(range(partitions)) - set(found))
    if missing:
        names = ", ".join(map(str, directories))
        raise WorkerSnapshotError(f"partitions {missing} of {partitions} are in none of the data directories given "
                                  f"({names}): give the data directory of every worker (DIR1,DIR2,...), or one "
                                  "that held every partition")
    return found


def _check_routing(store: PartitionSnapshotStore, partition: int, partitions: int, policy: str) -> None:
    """WorkerSnapshotError when a sampled user of `policy` in `partition` is routed elsewhere."""
    prefix = f"{policy}/user/"
    for key, _ in islice(store.scan_prefix(prefix), ROUTING_SAMPLE):
        user_id = key[len(prefix) :]
        routed = partition_of(user_id, partitions)
        if routed != partition:
            raise WorkerSnapshotError(f"user {user_id!r} is in partition {partition}'s state, but {partitions} "
                                      f"partitions route it to {routed}: set SLATESTREAM_PARTITIONS to the worker's")
