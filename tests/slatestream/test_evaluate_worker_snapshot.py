"""`evaluate --snapshot` over a worker's data directory ranks exactly as the worker does.

A WorkerCore writes its state as the worker does: one raw RocksDB per partition under
`<store dir>/v1/tables/state-<p>.db` (beside Faust's offset key), values with their offsets
header, a population state per partition, the item vectors through a shared projection. It
learns a log of 16 users over the 4 partitions their ids are keyed to, then serves 48 more
requests with one random generator seeded as the driver seeds the snapshot's (config seed,
index among the evaluated policies); those rounds are the log evaluated. Ranked with the state
of each user's partition and the same projection, every one of the snapshot's slates is the
worker's (match rate 1); routed to a single partition, or embedded with another projection, it
is not (or is refused).
"""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from rocksdict import Options, Rdict

from encoders.embedding import ItemEmbedding
from encoders.hashing import HashingEncoder
from encoders.projection import PcaProjection
from online.config import parse_config
from online.datasets import read_events, write_events
from online.evaluation.driver import PolicyVariant, evaluate_log
from online.evaluation.snapshots import ShardedSnapshot
from online.events import Click, Impression, Item, RankRequest, ShownItem, Slate, encode_event
from slatestream.cli import main
from slatestream.worker_snapshot import open_worker_snapshot
from streams.projection import PublishedProjection, save_projection
from streams.topics import partition_of
from streams.worker.core import Record, WorkerCore
from streams.worker.partition_state import PartitionTable

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PARTITIONS = 4
SEED = 1
SNAPSHOT_INDEX = 1  # `--policies uniform_random --snapshot ...`: the snapshot is the second policy
CONFIG = '[engine]\nn_draws = 32\n\n[embedding]\nencoder = "hashing"\ndim = 8\n'
FAUST_OFFSET_KEY = b"__faust\x00offset__"
USERS = [f"user-{n}" for n in range(16)]


class WorkerTables:
    """The worker's state layout: a raw rocksdict per partition, written without the WAL."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.parts: dict[int, PartitionTable] = {}

    def for_partition(self, partition: int) -> PartitionTable:
        if partition not in self.parts:
            path = self.data_dir / "v1" / "tables" / f"state-{partition}.db"
            path.parent.mkdir(parents=True, exist_ok=True)
            db = Rdict(str(path), options=Options(raw_mode=True))
            db.put(FAUST_OFFSET_KEY, b"41")  # Faust keeps its changelog offset beside the state
            self.parts[partition] = PartitionTable(db, frozenset({FAUST_OFFSET_KEY}))
        return self.parts[partition]

    def stop(self) -> None:
        """A clean stop: flush every memtable, close."""
        for part in self.parts.values():
            part.flush_to_disk()  # as the worker stops: its pending writes, then its memtable
            part.db.close()


class Offsets:
    def __init__(self) -> None:
        self.next: dict[tuple[str, int], int] = {}

    def record(self, kind: str, partition: int, key: str, event: Any) -> Record:
        offset = self.next.get((kind, partition), 0)
        self.next[(kind, partition)] = offset + 1
        return Record(kind, f"t.{kind}", partition, offset, key.encode(), encode_event(event))


def catalog() -> list[Item]:
    colours = ["red", "blue", "green", "black"]
    return [Item(item_id=f"i{n}", fields={"title": f"{colours[n % 4]} {['shoe', 'hat', 'coat'][n % 3]} {n}"}, time=T0)
            for n in range(24)]


def serve_round(worker: WorkerCore, offsets: Offsets, n: int, rng: np.random.Generator,
                learn: bool) -> list[Any]:
    """One request of user n % 16, ranked by the worker, its impression and clicks (the user
    likes the colour n % 4 of its id); learned when `learn`. Returns the round's events."""
    user = USERS[n % len(USERS)]
    partition = partition_of(user.encode(), PARTITIONS)
    time = T0 + timedelta(seconds=10 * n)
    candidates = tuple(f"i{c}" for c in sorted(rng.choice(24, 12, replace=False)))
    request = RankRequest(request_id=f"r{n}", user_id=user, candidates=candidates, k=4, time=time)
    slates, dead = worker.rank([offsets.record("requests", partition, user, request)])
    assert not dead and isinstance(slates[0], Slate)
    slate = slates[0]
    shown = tuple(ShownItem(item_id=i.item_id, position=i.position) for i in slate.items)
    impression = Impression(event_id=f"e{n}", request_id=request.request_id, user_id=user, shown=shown, time=time)
    liked = USERS.index(user) % 4
    clicks = [Click(event_id=f"c{n}-{s.item_id}", request_id=request.request_id, user_id=user, item_id=s.item_id,
                    time=time + timedelta(seconds=1))
              for s in shown if int(s.item_id[1:]) % 4 == liked and rng.random() < 0.8]
    if learn:
        feedback = [offsets.record("impressions", partition, user, impression),
                    *(offsets.record("clicks", partition, user, click) for click in clicks)]
        assert not worker.learn(feedback)
    return [request, slate, impression, *clicks]


@pytest.fixture(scope="module")
def worker_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A worker's data directory after learning, the log it then served, its projection file."""
    root = tmp_path_factory.mktemp("worker")
    items = catalog()
    encoder = HashingEncoder(dim=256)
    # the worker's projection: fitted on the first items it saw, not on the log's whole catalogue
    projection = PcaProjection.fit(encoder.encode([item.text() for item in items[:16]]), 8, 0)
    embed = ItemEmbedding(encoder, 8, projection)
    config = parse_config(tomllib.loads(CONFIG))
    tables = WorkerTables(root / "store")
    worker = WorkerCore(config, tables, embed, dim=8, seed=0, embedding_version=lambda: embed.version)
    offsets = Offsets()
    assert not worker.add_items([offsets.record("items", 0, item.item_id, item) for item in items])[1]
    rng = np.random.default_rng(5)
    for n in range(240):
        serve_round(worker, offsets, n, rng, learn=True)
    # Serving goes on, frozen, with the generator the evaluation gives the snapshot
    shared = np.random.default_rng([SEED, SNAPSHOT_INDEX])
    for partition in range(PARTITIONS):
        worker.engine(partition).rng = shared
    served: list[Any] = list(items)
    for n in range(240, 288):
        served += serve_round(worker, offsets, n, rng, learn=False)
    write_events(root / "served.jsonl", served)
    opened_while_running, stores = open_worker_snapshot(root / "store", PARTITIONS, "linear_ts")
    for store in stores:
        store.close()
    tables.stop()
    key = f"{encoder.fingerprint}/d8"
    save_projection(root / "projection.bin", PublishedProjection(key, projection, 3, 16, "2026-01-01"),
                    "it.projection")
    (root / "config.toml").write_text(CONFIG)
    return {"root": root, "config": config, "embed": embed, "users_per_partition": {
        p: sum(partition_of(u.encode(), PARTITIONS) == p for u in USERS) for p in range(PARTITIONS)},
        "opened_while_running": opened_while_running}


def evaluate(run: dict[str, Any], out: Path, *extra: str) -> Any:
    root = run["root"]
    return CliRunner().invoke(main, [
        "evaluate", "--data", f"events:{root / 'served.jsonl'}", "--config", str(root / "config.toml"),
        "--policies", "uniform_random", "--snapshot", f"prod=linear_ts:{root / 'store'}", "--seed", str(SEED),
        "--n-bootstrap", "50", "--out", str(out), *extra])


def test_the_snapshot_of_a_workers_data_directory_serves_the_workers_slates(
        worker_run: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLATESTREAM_BROKER_URL", raising=False)
    monkeypatch.setenv("SLATESTREAM_PARTITIONS", str(PARTITIONS))
    assert all(count > 0 for count in worker_run["users_per_partition"].values())
    result = evaluate(worker_run, tmp_path / "report", "--projection", str(worker_run["root"] / "projection.bin"))
    assert result.exit_code == 0, result.output
    payload = json.loads((tmp_path / "report" / "evaluation.json").read_text())
    prod = next(p for p in payload["policies"] if p["policy"] == "prod")
    assert prod["snapshot"] and prod["counters"]["learned_events"] == 0
    assert prod["metrics"]["match_rate"] == 1.0  # every item of every slate where the worker put it
    assert payload["projection"]["source"] == "file" and payload["projection"]["offset"] == 3
    assert payload["projection"]["version"] == worker_run["embed"].projection.version


def test_another_projection_is_refused_and_one_partition_for_all_users_does_not_rank_as_the_worker(
        worker_run: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLATESTREAM_BROKER_URL", raising=False)
    monkeypatch.setenv("SLATESTREAM_PARTITIONS", str(PARTITIONS))
    refused = evaluate(worker_run, tmp_path / "fit", "--projection", "fit")
    assert refused.exit_code != 0 and "learned over item vectors" in refused.output
    monkeypatch.setenv("SLATESTREAM_PARTITIONS", "2")
    wrong = evaluate(worker_run, tmp_path / "two", "--projection", str(worker_run["root"] / "projection.bin"))
    assert wrong.exit_code != 0 and "partitions [2, 3], beyond the 2" in wrong.output

    snapshot, stores = open_worker_snapshot(worker_run["root"] / "store", PARTITIONS, "linear_ts")
    try:
        events = list(read_events(worker_run["root"] / "served.jsonl"))
        rates = []
        for shard_of in (snapshot.shard_of, lambda user_id: "0"):
            routed = ShardedSnapshot(snapshot.stores, shard_of)
            policies = ["uniform_random", PolicyVariant("linear_ts", label="prod", state=routed)]
            result = evaluate_log(events, policies, worker_run["embed"], 8,
                                  config=_driver(worker_run["config"]))
            rates.append(result.policy("prod").metrics["match_rate"])
        assert rates[0] == 1.0 and rates[1] < 0.9
    finally:
        for store in stores:
            store.close()


def test_a_running_workers_flushed_state_opens_read_only(worker_run: dict[str, Any]) -> None:
    snapshot = worker_run["opened_while_running"]
    assert sorted(snapshot.stores) == ["0", "1", "2", "3"]
    assert {snapshot.shard_of(u) for u in USERS} == {"0", "1", "2", "3"}


def _driver(config: Any) -> Any:
    from online.evaluation.config import DriverConfig

    return DriverConfig(engine=config.engine, seed=SEED, n_bootstrap=50, attribution_s=1800.0)
