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

Read-only opening (rocksdict `AccessType.read_only()`) takes no lock and never writes, so it
works beside a running worker; but the worker writes without a write-ahead log, so a running
worker's writes since its last memtable flush are not on disk yet: stop it (a clean stop flushes)
to evaluate the state it serves.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path

from rocksdict import AccessType, Options, Rdict

from online.evaluation.snapshots import ShardedSnapshot
from streams.topics import partition_of
from streams.worker.table_store import unwrap

TABLES_DIR = Path("v1") / "tables"
"""Where Faust keeps the worker's tables under its data directory."""
PARTITION_DB = re.compile(r"state-(\d+)\.db")
ROUTING_SAMPLE = 50
"""Users per partition whose partition is checked against the partitioner when opening."""


class WorkerSnapshotError(ValueError):
    """A worker data directory that cannot be evaluated as it is (the message says why)."""


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

    def put(self, key: str, value: bytes) -> None:
        raise TypeError(f"{self.path}: a worker snapshot is read-only")

    def put_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        raise TypeError(f"{self.path}: a worker snapshot is read-only")

    def delete(self, key: str) -> None:
        raise TypeError(f"{self.path}: a worker snapshot is read-only")

    def scan_prefix(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        raw_prefix = prefix.encode()
        for key, value in self._db.items(from_key=raw_prefix):
            if not key.startswith(raw_prefix):
                break
            if bytes(value).startswith(b"SSOF"):  # Faust's own keys (its changelog offset) are not state
                yield key.decode(), unwrap(bytes(value))[1]

    def close(self) -> None:
        self._db.close()


def open_worker_snapshot(directory: Path, partitions: int,
                         policy: str) -> tuple[ShardedSnapshot, list[PartitionSnapshotStore]]:
    """The worker's state in `directory` as a ShardedSnapshot over `partitions` partitions (the
    worker's SLATESTREAM_PARTITIONS), and its opened stores (the caller closes them).
    WorkerSnapshotError when the directory lacks a partition, holds one beyond `partitions`, or
    holds a user of `policy` the partitioner puts elsewhere (another partition count)."""
    found = worker_partitions(directory)
    missing = sorted(set(range(partitions)) - set(found))
    beyond = sorted(p for p in found if p >= partitions)
    if beyond:
        raise WorkerSnapshotError(f"{directory} holds partitions {beyond}, beyond the {partitions} of "
                                  "SLATESTREAM_PARTITIONS: set it to the worker's")
    if missing:
        raise WorkerSnapshotError(f"{directory} lacks partitions {missing} of {partitions}: evaluate a data directory "
                                  "that holds every partition (one worker's, after it held them all)")
    stores: list[PartitionSnapshotStore] = []
    try:
        for partition in range(partitions):
            stores.append(PartitionSnapshotStore(found[partition]))
        for partition, store in enumerate(stores):
            _check_routing(store, partition, partitions, policy)
    except Exception as error:
        for store in stores:
            store.close()
        if isinstance(error, WorkerSnapshotError):
            raise
        raise WorkerSnapshotError(f"{directory}: cannot open the worker's state ({error})") from error
    snapshot = ShardedSnapshot({str(p): store for p, store in enumerate(stores)},
                               lambda user_id: str(partition_of(user_id, partitions)))
    return snapshot, stores


def _check_routing(store: PartitionSnapshotStore, partition: int, partitions: int, policy: str) -> None:
    """WorkerSnapshotError when a sampled user of `policy` in `partition` is routed elsewhere."""
    prefix = f"{policy}/user/"
    for key, _ in islice(store.scan_prefix(prefix), ROUTING_SAMPLE):
        user_id = key[len(prefix) :]
        routed = partition_of(user_id, partitions)
        if routed != partition:
            raise WorkerSnapshotError(f"user {user_id!r} is in partition {partition}'s state, but {partitions} "
                                      f"partitions route it to {routed}: set SLATESTREAM_PARTITIONS to the worker's")
