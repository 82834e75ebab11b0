"""`evaluate --snapshot` over a deployment: several workers' data directories, and scenarios routed
to different policies.

Two workers: a WorkerCore writes each partition's RocksDB in the data directory of the worker that
owns it (as the worker lays them out: `<dir>/v1/tables/state-<p>.db`, values with their offsets
header). Halfway through learning partition 1 moves from worker b to worker a (a rebalance: a
starts from the state as it was, as its changelog recovery would give it, and keeps learning; b's
directory keeps its copy, now stale). The worker then serves 48 requests, frozen, with the
generator the driver gives the snapshot. `--snapshot prod=linear_ts:A,B` reads partitions 0 and 1
from a and 2 and 3 from b, setting aside b's older copy of 1, and reproduces every slate (match
rate 1); read from the stale copy it does not. A deployment routing two scenarios to two policies
is reproduced by `routed` and not by either policy forced on every request.
"""

from __future__ import annotations

import json
import shutil
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
from online.evaluation.config import DriverConfig
from online.evaluation.driver import PolicyVariant, evaluate_log
from online.evaluation.snapshots import ShardedSnapshot
from online.events import Click, Impression, RankRequest, ShownItem, Slate
from slatestream.cli import main
from slatestream.partition_copies import PartitionCopy, newest_copy
from slatestream.worker_snapshot import (
    PartitionSnapshotStore,
    WorkerSnapshotError,
    open_worker_snapshots,
)
from streams.projection import PublishedProjection, save_projection
from streams.testing.modules import load_module
from streams.topics import partition_of
from streams.worker.core import WorkerCore
from streams.worker.partition_state import PartitionTable
from streams.worker.table_store import wrap

ONE = load_module("worker_snapshot_test_helpers", Path(__file__).with_name("test_evaluate_worker_snapshot.py"))
T0 = datetime(2026, 1, 1, tzinfo=UTC)
PARTITIONS = 4
SEED = 1
SNAPSHOT_INDEX = 1  # `--policies uniform_random --snapshot ...`: the snapshot is the second policy
USERS = [f"user-{n}" for n in range(16)]
CONFIG = '[engine]\nn_draws = 32\n\n[embedding]\nencoder = "hashing"\ndim = 8\n'
ROUTED_CONFIG = CONFIG + """
[scenarios.feed]
slate_size = 4
[scenarios.feed.policy]
name = "linear_ts"

[scenarios.ad_slot]
slate_size = 3
[scenarios.ad_slot.policy]
name = "hybrid_ts"
"""
MOVED, MOVED_AT = 1, 120  # partition 1 moves from worker b to worker a before round 120


class DeploymentTables:
    """Two workers' data directories: partition p lives in the directory of its owner; `move`
    hands a partition to the other worker (its copy goes along; the old owner's stays as it was)."""

    def __init__(self, dirs: dict[str, Path], owner: dict[int, str]) -> None:
        self.dirs, self.owner = dirs, dict(owner)
        self.parts: dict[int, PartitionTable] = {}

    def path(self, partition: int, worker: str) -> Path:
        return self.dirs[worker] / "v1" / "tables" / f"state-{partition}.db"

    def for_partition(self, partition: int) -> PartitionTable:
        if partition not in self.parts:
            path = self.path(partition, self.owner[partition])
            path.parent.mkdir(parents=True, exist_ok=True)
            db = Rdict(str(path), options=Options(raw_mode=True))
            db.put(ONE.FAUST_OFFSET_KEY, b"41")
            self.parts[partition] = PartitionTable(db, frozenset({ONE.FAUST_OFFSET_KEY}))
        return self.parts[partition]

    def move(self, partition: int, to: str) -> None:
        part = self.for_partition(partition)
        part.flush_to_disk()  # as the old owner lets go: its pending writes, then its memtable
        part.db.close()
        target = self.path(partition, to)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(self.path(partition, self.owner[partition]), target)
        self.owner[partition] = to
        part.db = Rdict(str(target), options=Options(raw_mode=True))

    def stop(self) -> None:
        for part in self.parts.values():
            part.flush_to_disk()  # as the worker stops: its pending writes, then its memtable
            part.db.close()


def serve_round(worker: WorkerCore, offsets: Any, n: int, rng: np.random.Generator, learn: bool,
                scenario: str = "default") -> list[Any]:
    """One request of user n % 16 in `scenario` (k = 4 named by the request, except in "ad_slot",
    which sizes its own slates), ranked by the worker, its impression and clicks (the user likes
    the colour n % 4 of its id); learned when `learn`. Returns the round's events."""
    user = USERS[n % len(USERS)]
    partition = partition_of(user.encode(), PARTITIONS)
    time = T0 + timedelta(seconds=10 * n)
    candidates = tuple(f"i{c}" for c in sorted(rng.choice(24, 12, replace=False)))
    sized = {} if scenario == "ad_slot" else {"k": 4}
    request = RankRequest(request_id=f"r{n}", user_id=user, candidates=candidates, time=time, scenario=scenario,
                          **sized)
    slates, dead = worker.rank([offsets.record("requests", partition, user, request)])
    assert not dead and isinstance(slates[0], Slate)
    slate = slates[0]
    shown = tuple(ShownItem(item_id=i.item_id, position=i.position) for i in slate.items)
    impression = Impression(event_id=f"e{n}", request_id=request.request_id, user_id=user, shown=shown, time=time,
                            scenario=scenario)
    liked = USERS.index(user) % 4
    clicks = [Click(event_id=f"c{n}-{s.item_id}", request_id=request.request_id, user_id=user, item_id=s.item_id,
                    time=time + timedelta(seconds=1), scenario=scenario)
              for s in shown if int(s.item_id[1:]) % 4 == liked and rng.random() < 0.8]
    if learn:
        feedback = [offsets.record("impressions", partition, user, impression),
                    *(offsets.record("clicks", partition, user, click) for click in clicks)]
        assert not worker.learn(feedback)
    return [request, slate, impression, *clicks]


def run_worker(root: Path, config_text: str, tables: Any, scenario_of: Any, between: Any = None) -> dict[str, Any]:
    """Learn 240 rounds (`between(n)` before each), serve 48 frozen with the snapshot's generator;
    write the served log, the projection and the configuration under `root`."""
    items = ONE.catalog()
    encoder = HashingEncoder(dim=256)
    projection = PcaProjection.fit(encoder.encode([item.text() for item in items[:16]]), 8, 0)
    embed = ItemEmbedding(encoder, 8, projection)
    config = parse_config(tomllib.loads(config_text))
    worker = WorkerCore(config, tables, embed, dim=8, seed=0, embedding_version=lambda: embed.version)
    offsets = ONE.Offsets()
    assert not worker.add_items([offsets.record("items", 0, item.item_id, item) for item in items])[1]
    rng = np.random.default_rng(5)
    for n in range(240):
        if between is not None:
            between(n)
        serve_round(worker, offsets, n, rng, learn=True, scenario=scenario_of(n))
    shared = np.random.default_rng([SEED, SNAPSHOT_INDEX])  # every engine of every partition: one generator
    for partition in range(PARTITIONS):
        for engine in worker.router(partition).engines.values():
            engine.rng = shared
    served: list[Any] = list(items)
    for n in range(240, 288):
        served += serve_round(worker, offsets, n, rng, learn=False, scenario=scenario_of(n))
    write_events(root / "served.jsonl", served)
    tables.stop()
    save_projection(root / "projection.bin", PublishedProjection(f"{encoder.fingerprint}/d8", projection, 3, 16,
                                                                 "2026-01-01"), "it.projection")
    (root / "config.toml").write_text(config_text)
    return {"root": root, "config": config, "embed": embed}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two workers' data directories after learning (partition 1 moved from b to a halfway)."""
    root = tmp_path_factory.mktemp("deployment")
    dirs = {"a": root / "worker-a", "b": root / "worker-b"}
    tables = DeploymentTables(dirs, {0: "a", 1: "b", 2: "b", 3: "b"})

    def rebalance(n: int) -> None:
        if n == MOVED_AT:
            tables.move(MOVED, "a")

    run = run_worker(root, CONFIG, tables, lambda n: "default", rebalance)
    assert {p for p in range(PARTITIONS) if any(partition_of(u.encode(), PARTITIONS) == p for u in USERS)} == {
        0, 1, 2, 3}
    return {**run, "dirs": dirs}


@pytest.fixture(scope="module")
def routed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One worker's data directory after serving "feed" (linear TS) and "ad_slot" (hybrid TS)."""
    root = tmp_path_factory.mktemp("routed")
    tables = ONE.WorkerTables(root / "store")
    return run_worker(root, ROUTED_CONFIG, tables, lambda n: "ad_slot" if (n // 16) % 2 else "feed")


def evaluate(run: dict[str, Any], out: Path, snapshot: str, *extra: str) -> Any:
    root = run["root"]
    return CliRunner().invoke(main, [
        "evaluate", "--data", f"events:{root / 'served.jsonl'}", "--config", str(root / "config.toml"),
        "--policies", "uniform_random", "--snapshot", snapshot, "--seed", str(SEED), "--n-bootstrap", "50",
        "--projection", str(root / "projection.bin"), "--out", str(out), *extra])


def match_rate(out: Path) -> float:
    payload = json.loads((out / "evaluation.json").read_text())
    return float(next(p for p in payload["policies"] if p["policy"] == "prod")["metrics"]["match_rate"])


@pytest.fixture(autouse=True)
def _partitions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLATESTREAM_BROKER_URL", raising=False)
    monkeypatch.setenv("SLATESTREAM_PARTITIONS", str(PARTITIONS))


def test_two_workers_directories_with_a_stale_copy_serve_the_workers_slates(
        deployment: dict[str, Any], tmp_path: Path) -> None:
    a, b = deployment["dirs"]["a"], deployment["dirs"]["b"]
    assert (b / "v1" / "tables" / f"state-{MOVED}.db").is_dir()  # the old owner's copy is still there
    result = evaluate(deployment, tmp_path / "report", f"prod=linear_ts:{b},{a}")
    assert result.exit_code == 0, result.output
    assert match_rate(tmp_path / "report") == 1.0
    sources = json.loads((tmp_path / "report" / "evaluation.json").read_text())["snapshots"]["prod"]
    assert {p: s["directory"] for p, s in sources["partitions"].items()} == {
        "0": str(a), "1": str(a), "2": str(b), "3": str(b)}
    assert [(s["partition"], s["directory"]) for s in sources["set_aside"]] == [(MOVED, str(b))]
    stale, served = sources["set_aside"][0]["applied_offsets"], sources["partitions"]["1"]["applied_offsets"]
    assert all(stale["linear_ts"][t] < served["linear_ts"][t] for t in ("impressions", "clicks"))
    report = (tmp_path / "report" / "report.md").read_text()
    assert f"partitions 0, 1 from {a}" in report and f"partition 1's older copy in {b} set aside" in report
    assert sources["changelog"] is None and "not checked against the state changelog (SLATESTREAM_BROKER_URL unset)" \
        in report  # with a broker: tests/integration/test_evaluate_snapshot_changelog.py
    refused = evaluate(deployment, tmp_path / "fresh-only", f"prod=linear_ts:{b},{a}", "--fresh-snapshots")
    assert refused.exit_code == 1 and not (tmp_path / "fresh-only" / "evaluation.json").exists()
    assert "--fresh-snapshots: cannot check" in refused.output and "set SLATESTREAM_BROKER_URL" in refused.output


def test_the_stale_copy_would_not_rank_as_the_worker(deployment: dict[str, Any]) -> None:
    dirs = deployment["dirs"]
    snapshot = open_worker_snapshots([dirs["a"], dirs["b"]], PARTITIONS, ("linear_ts",))
    stale = PartitionSnapshotStore(dirs["b"] / "v1" / "tables" / f"state-{MOVED}.db")
    try:
        assert snapshot.served[MOVED].directory == dirs["a"]
        events = list(read_events(deployment["root"] / "served.jsonl"))
        rates = []
        for stores in (snapshot.sharded.stores, {**snapshot.sharded.stores, str(MOVED): stale}):
            variant = PolicyVariant("linear_ts", label="prod", state=ShardedSnapshot(stores, snapshot.sharded.shard_of))
            result = evaluate_log(events, ["uniform_random", variant], deployment["embed"], 8, config=DriverConfig(
                engine=deployment["config"].engine, seed=SEED, n_bootstrap=50, attribution_s=1800.0))
            rates.append(result.policy("prod").metrics["match_rate"])
        assert rates[0] == 1.0 and rates[1] < 0.95
    finally:
        stale.close()
        for store in snapshot.stores:
            store.close()


def test_a_partition_in_no_directory_is_named(deployment: dict[str, Any], tmp_path: Path) -> None:
    result = evaluate(deployment, tmp_path / "missing", f"prod=linear_ts:{deployment['dirs']['b']}")
    assert result.exit_code != 0 and "partitions [0] of 4 are in none of the data directories" in result.output


def _partition_copy(directory: Path, impressions: int, clicks: int) -> Path:
    """A one-partition worker data directory whose population state includes these offsets."""
    db = Rdict(str(directory / "v1" / "tables" / "state-0.db"), options=Options(raw_mode=True))
    db.put(b"linear_ts/global/0", wrap({0: impressions, 1: clicks}, b"state"))
    db.close()
    return directory


def test_copies_each_ahead_on_some_topic_are_refused_naming_both(deployment: dict[str, Any], tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    x = _partition_copy(tmp_path / "x", impressions=10, clicks=2)
    y = _partition_copy(tmp_path / "y", impressions=8, clicks=5)
    with pytest.raises(WorkerSnapshotError, match="neither copy is ahead on every topic") as refused:
        open_worker_snapshots([x, y], 1, ("linear_ts",))
    assert str(x) in str(refused.value) and str(y) in str(refused.value)
    monkeypatch.setenv("SLATESTREAM_PARTITIONS", "1")
    result = evaluate(deployment, tmp_path / "out", f"prod=linear_ts:{x},{y}")
    assert result.exit_code != 0 and "neither copy is ahead" in result.output


def test_the_newest_copy_is_ahead_on_every_policy_and_topic() -> None:
    def copy(name: str, applied: dict[str, dict[str, int]]) -> PartitionCopy:
        return PartitionCopy(0, Path(name), Path(name) / "state-0.db", applied)

    old = copy("old", {"linear_ts": {"impressions": 5, "clicks": 1}})
    new = copy("new", {"linear_ts": {"impressions": 9, "clicks": 1}, "hybrid_ts": {"impressions": 2}})
    same = copy("same", {"linear_ts": {"impressions": 9, "clicks": 1}, "hybrid_ts": {"impressions": 2}})
    assert newest_copy([old, new]) is new and newest_copy([new, old]) is new
    assert newest_copy([new, same]) is new  # the same events: the first given
    behind_elsewhere = copy("other", {"linear_ts": {"impressions": 12, "clicks": 1}})  # lacks hybrid_ts's events
    with pytest.raises(WorkerSnapshotError, match="partition 0 is in new and in other"):
        newest_copy([new, behind_elsewhere])


def test_routed_scenarios_are_ranked_by_their_own_policies(routed: dict[str, Any], tmp_path: Path) -> None:
    store = routed["root"] / "store"
    result = evaluate(routed, tmp_path / "routed", f"prod=routed:{store}")
    assert result.exit_code == 0, result.output
    assert match_rate(tmp_path / "routed") == 1.0
    sources = json.loads((tmp_path / "routed" / "evaluation.json").read_text())["snapshots"]["prod"]
    assert sources["policy"] == "routed" and sources["policies"] == ["linear_ts", "hybrid_ts"]
    for forced in ("linear_ts", "hybrid_ts"):
        result = evaluate(routed, tmp_path / forced, f"prod={forced}:{store}")
        assert result.exit_code == 0, result.output
        assert match_rate(tmp_path / forced) < 0.9
