"""One contract for every StateStore implementation: in memory, the embedded RocksDB store, and
the worker's TableStore (over a dict, and over a partition's RocksDB as the worker opens it)."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from rocksdict import Options, Rdict

from online.state import InMemoryStore, StateStore
from slatestream.store import RocksDictStore
from streams.worker.partition_state import PartitionTable
from streams.worker.table_store import TableStore


def make_store(kind: str, path: Path) -> StateStore:
    if kind == "memory":
        return InMemoryStore()
    if kind == "rocksdict":
        return RocksDictStore(path)
    if kind == "table-dict":
        return TableStore({})
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    return TableStore(PartitionTable(Rdict(str(path), options=options), frozenset({b"__offset__"})))


@pytest.fixture(params=["memory", "rocksdict", "table-dict", "table-rocksdb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    made = make_store(request.param, tmp_path / "db")
    yield made
    made.close()


def test_put_get_delete(store: StateStore) -> None:
    assert store.get("a") is None
    store.put("a", b"\x00\x01")
    assert store.get("a") == b"\x00\x01"
    store.put("a", b"2")
    assert store.get("a") == b"2"
    store.delete("a")
    store.delete("never-there")
    assert store.get("a") is None


def test_batches_and_prefix_scan(store: StateStore) -> None:
    store.put_many([("p/b", b"2"), ("p/a", b"1"), ("q/a", b"3")])
    assert store.get_many(["p/a", "missing", "q/a"]) == [b"1", None, b"3"]
    assert store.get_many([]) == []
    assert list(store.scan_prefix("p/")) == [("p/a", b"1"), ("p/b", b"2")]
    assert list(store.scan_prefix("z")) == []


def test_satisfies_protocol(store: StateStore) -> None:
    assert isinstance(store, StateStore)


def test_rocksdict_persists_across_reopen(tmp_path: Path) -> None:
    first = RocksDictStore(tmp_path / "db")
    first.put("user/1", b"state")
    first.close()
    second = RocksDictStore(tmp_path / "db")
    assert second.get("user/1") == b"state"
    second.close()
