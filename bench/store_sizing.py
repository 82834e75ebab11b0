"""Bytes of worker state per user and per catalog item, by key family: the numbers behind
docs/operations.md "Store sizing".

    .venv/bin/python bench/store_sizing.py [--users 500] [--items 500] [--visits 5] [--dim 32] [--filters]

Runs `WorkerCore` (the worker's own code path, over a dict table) on a seeded workload: the
catalog, then for every user `--visits` requests (10 of the catalog's items each, k = 10), an
impression of the slate with its propensities and one click. Prints the mean key + value bytes
per user of each key family of the state table (`linear_ts/user/<id>`: the learned state with its
applied-offsets header; `requests/<id>`: the recent requests clicks are checked against;
`events/<id>`: the recent event ids producers' duplicates are checked against;
`<policy>/objectives/user/<id>` with --filters: the filters' memory), the per-partition keys, and
the catalog table's bytes per item. These are the values Faust's changelog and each partition's
RocksDB hold (before RocksDB's own overhead and compression).

    .venv/bin/python bench/store_sizing.py --on-disk [--users 20000] [--visits 2]

instead runs a real worker (broker from deploy/kafka, `slatestream worker --dim 32`) on the
seeded workload of streams.testing.workload (3 items shown per request, half clicked), stops it
cleanly and prints the bytes its store directory (every partition's RocksDB) and the state
changelog topic take on disk, per user.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.command_line import command_line  # noqa: E402
from encoders.hashing import HashingEncoder  # noqa: E402
from online.config import parse_config  # noqa: E402
from online.events import Click, Impression, Item, RankRequest, Slate, decode_event, encode_event  # noqa: E402
from streams.client import impression_for  # noqa: E402
from streams.testing import SharedTables  # noqa: E402
from streams.worker.core import Record, WorkerCore  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def family(key: bytes) -> str:
    """"linear_ts/user/u1" -> "linear_ts/user/<id>" (and "requests/<id>", "events/<id>", the recent
    request and event ids kept per user); keys without a user id kept whole up to a digit."""
    text = key.decode()
    for marker in ("/user/", "requests/", "events/"):
        if marker in text:
            return text[: text.index(marker) + len(marker)] + "<id>"
    return text.rstrip("0123456789") + "<n>"


def directory_bytes(path: Path) -> int:
    """Bytes of every file under `path`."""
    return sum(child.stat().st_size for child in path.rglob("*") if child.is_file())


def rocksdb_bytes(table: dict[bytes, bytes]) -> tuple[int, int]:
    """(key + value bytes, bytes on disk) of `table` written to a fresh rocksdict store, flushed."""
    import tempfile

    from rocksdict import Options, Rdict

    with tempfile.TemporaryDirectory() as tmp:
        db = Rdict(tmp, options=Options(raw_mode=True))
        for key, value in table.items():
            db[key] = value
        db.flush()
        db.close()
        return sum(len(key) + len(value) for key, value in table.items()), directory_bytes(Path(tmp))


def on_disk(users: int, visits: int, seed: int) -> None:
    """A real worker's store and changelog bytes after `users` x `visits` requests with feedback."""
    import tempfile

    from bench.worker_latency import wait_counts
    from bench.worker_throughput import load_broker
    from streams.settings import StreamSettings
    from streams.state_changelog import state_changelog_topic
    from streams.testing.worker_process import WorkerProcess
    from streams.testing.workload import make_workload, publish
    from streams.topics import ensure_topics

    workload = make_workload(n_users=users, n_items=500, n_requests=users * visits, shown=3, seed=seed)
    feedback = workload.feedback()
    with load_broker().KafkaBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        settings = StreamSettings(broker_url=broker.url, topic_prefix="size.", partitions=4,
                                  broker_session_timeout_s=6.0)
        ensure_topics(settings)
        store = Path(tmp) / "store"
        worker = WorkerProcess(settings, store, Path(tmp) / "worker.log", ("--dim", "32", "--seed", str(seed)))
        with worker:
            worker.wait_ready()
            publish(settings, workload.items)
            wait_counts(worker, len(workload.items), ("items",))
            publish(settings, workload.requests)
            wait_counts(worker, len(workload.requests) + len(workload.items), ("items", "ranked", "dead_lettered"),
                        timeout_s=600)
            publish(settings, feedback)
            done = len(workload.requests) + len(workload.items) + len(feedback)
            counts = wait_counts(worker, done, ("items", "ranked", "learned", "dead_lettered", "skipped_duplicates"),
                                 timeout_s=600)
            time.sleep(6.0)  # the last group commit
            worker.stop()
        active = len({request.user_id for request in workload.requests})
        store_bytes = directory_bytes(store)
        changelog = state_changelog_topic(settings)
        assert broker.data_dir is not None
        log_bytes = sum(segment.stat().st_size for path in (broker.data_dir / "data").glob(f"{changelog}-*")
                        for segment in path.glob("*.log"))  # the .index files are preallocated (10 MB)
    print(f"real worker, {active:,} users x {visits} requests (3 shown, half clicked), d=32: counts {counts}")
    print(f"  store dir after a clean stop (every partition's RocksDB): {store_bytes:,} bytes = "
          f"{store_bytes / active:,.0f} per user")
    print(f"  state changelog segments (.log) on the broker (1 replica, before compaction): {log_bytes:,} bytes = "
          f"{log_bytes / active:,.0f} per user")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--visits", type=int, default=5, help="requests (each with an impression and a click) per user")
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--filters", action="store_true", help="with exclude-shown/clicked filters (their memory)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--on-disk", action="store_true", help="a real worker: its store and changelog on disk")
    args = parser.parse_args()
    if args.on_disk:
        on_disk(args.users, args.visits, args.seed)
        print(command_line("bench/store_sizing.py"))
        return
    rng = np.random.default_rng(args.seed)
    data: dict = {"embedding": {"dim": args.dim}}
    if args.filters:
        data.update(fallback_scenario="default", scenarios={"default": {"filters": {
            "exclude_shown_within_s": 3600, "exclude_clicked_within_s": 86400}}})
    config = parse_config(data)
    encoder = HashingEncoder(dim=args.dim)
    table: dict[bytes, bytes] = {}
    core = WorkerCore(config, SharedTables(table), lambda items: encoder.encode([i.text() for i in items]), args.dim)
    catalog = [Item(item_id=f"item-{n:06d}", fields={"title": f"article {n} about {rng.integers(50)}"}, time=T0)
               for n in range(args.items)]
    added, _ = core.add_items([Record("items", "t.items", 0, n, item.item_id.encode(), encode_event(item))
                               for n, item in enumerate(catalog)])
    catalog_bytes = sum(len(item.item_id.encode()) + len(value) for item, value in added)
    offsets: dict[str, int] = defaultdict(int)

    def record(kind: str, user: str, value: bytes) -> Record:
        offsets[kind] += 1
        return Record(kind, f"t.{kind}", 0, offsets[kind], user.encode(), value)

    for visit in range(args.visits):
        time = T0 + timedelta(minutes=visit)
        requests = []
        for u in range(args.users):
            candidates = tuple(catalog[int(i)].item_id for i in rng.choice(args.items, 10, replace=False))
            request = RankRequest(request_id=f"req-{visit}-{u:06d}", user_id=f"user-{u:06d}", candidates=candidates,
                                  k=10, time=time)
            requests.append(record("requests", request.user_id, encode_event(request)))
        slates, dead = core.rank(requests)
        assert not dead, dead[:1]
        feedback = []
        for raw in slates:
            slate = raw if isinstance(raw, Slate) else decode_event(raw)
            assert isinstance(slate, Slate)
            impression: Impression = impression_for(slate, time=time + timedelta(seconds=1))
            click = Click(event_id=f"c-{slate.request_id}", request_id=slate.request_id, user_id=slate.user_id,
                          item_id=slate.items[0].item_id, time=time + timedelta(seconds=2))
            feedback += [record("impressions", slate.user_id, encode_event(impression)),
                         record("clicks", slate.user_id, encode_event(click))]
        assert not core.learn(feedback), "feedback dead-lettered"
    by_family: dict[str, list[int]] = defaultdict(list)
    for key, value in table.items():
        by_family[family(key)].append(len(key) + len(value))
    total = sum(map(sum, by_family.values()))
    print(f"state after {args.users:,} users x {args.visits} visits (10 candidates, k=10, 1 click each), d={args.dim}, "
          f"filters {'on' if args.filters else 'off'}: {len(table):,} keys, {total:,} bytes")
    per_user = 0.0
    for name, sizes in sorted(by_family.items()):
        mean = sum(sizes) / len(sizes)
        if "<id>" in name:
            per_user += sum(sizes) / args.users
        print(f"  {name:34s} {len(sizes):7,} keys  mean {mean:8,.0f} B  total {sum(sizes):12,} B")
    print(f"per user (key + value, every user family): {per_user:,.0f} bytes")
    logical, stored = rocksdb_bytes(table)
    print(f"the same keys in one RocksDB (rocksdict defaults, flushed and closed): {stored:,} bytes on disk for "
          f"{logical:,} logical, {stored / logical:.2f}x")
    print(f"catalog table per item (key + value, d={args.dim}): {catalog_bytes / args.items:,.0f} bytes")
    print(command_line("bench/store_sizing.py"))


if __name__ == "__main__":
    main()
