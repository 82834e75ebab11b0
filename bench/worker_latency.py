"""Rank request -> slate latency of ONE worker through a real Kafka broker at a fixed rate, and
click freshness (a click -> the user's first slate that reflects it).

    .venv/bin/python bench/worker_latency.py [--rate 500] [--seconds 10] [--candidates 1000]
        [--items 2000] [--users 200] [--freshness-users 20] [--partitions 4] [--n-draws 64]
        [--seed 0] [--profile-worker worker.prof]

Starts its own broker (deploy/kafka KafkaBroker) and worker (WorkerProcess), loads the catalog
(--items), ranks and learns a warm-up workload so users have state, then:

1. Latency: RankRequests with --candidates candidates each, sent open loop at --rate for
   --seconds (send times fixed in advance; latency is measured from the scheduled time, so a
   stalled sender or a backlog in the worker shows up instead of being hidden). A request's
   latency = the moment the slate for its request id is returned by the poll of a consumer in
   this process (assigned to every slates partition, no group) minus its scheduled send
   time. The slate record's Kafka CreateTime (set when the worker sends it) splits that into
   request -> worker send and worker send -> readable here.
2. Freshness (no other load): for each of --freshness-users users, one at a time: a reference
   slate over 10 fixed candidates (k = 10, so the target item is always in the slate), an
   impression showing the target, rank requests every --poll-ms until a slate's `std` of the
   target changed (the impression is in the user's state), then a click on the target and
   polls until the target's posterior `mean` changed. `mean` and `std` are deterministic
   functions of the learned state (the Thompson draw only moves `score`), and nothing else is
   learned meanwhile, so a change is the event applied. Reported: publish -> first arrival of
   a changed slate, and whether every click raised the mean.
3. Baselines in the same run: (a) the same open-loop load through the same broker answered by
   an echo service (aiokafka consume -> produce {"request_id"}, no ranking, no Faust:
   bench/latency_support.py); (b) in this process, after the broker is gone, the worker's
   per-request CPU work on the same requests: WorkerCore.rank (decode, Engine.rank, request
   key write) + encode of the slate, over a dict table.

--profile-worker PATH runs the worker under cProfile (slower: use it to see where time goes,
not for the figures) and prints the functions that matter.
"""

from __future__ import annotations

import argparse
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.latency_support import (  # noqa: E402
    FreshnessProbe,
    LatencySummary,
    SlateReader,
    encoded_requests,
    make_producer,
    send_open_loop,
)
from bench.worker_throughput import load_broker  # noqa: E402
from encoders.hashing import HashingEncoder  # noqa: E402
from online.config import SlatestreamConfig  # noqa: E402
from online.events import Item, RankRequest, Slate, decode_event, encode_event  # noqa: E402
from slatestream.threads import use_one_blas_thread  # noqa: E402
from streams.control import ensure_control_topic  # noqa: E402
from streams.settings import StreamSettings  # noqa: E402
from streams.testing import (  # noqa: E402
    SharedTables,
    WorkerProcess,
    Workload,
    make_workload,
    publish,
)
from streams.topics import TopicNames, ensure_topics  # noqa: E402
from streams.worker.core import Record, WorkerCore  # noqa: E402

DIM = 32


def wait_counts(worker: WorkerProcess, done: int, keys: tuple[str, ...], timeout_s: float = 180) -> dict[str, int]:
    """Wait until the sum of `keys` in the worker's logged counts (every 5 s) reaches `done`."""
    deadline = time.monotonic() + timeout_s
    while True:
        counts = worker.counts()
        if sum(counts.get(key, 0) for key in keys) >= done:
            return counts
        if time.monotonic() > deadline:
            raise TimeoutError(f"worker counts {counts} did not reach {keys} >= {done}")
        time.sleep(0.5)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_load(producer, reader: SlateReader, topic: str, requests, rate: float,  # type: ignore[no-untyped-def]
             drain_s: float, pids: dict[str, int]) -> dict[str, np.ndarray]:
    """Open-loop load, then wait for the answers: per request scheduled, sent, created, arrived (s), and
    the CPU seconds each process in `pids` used from the first send to the last answer ("cpu:<name>")."""
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    wall_before = time.time()
    scheduled, sent = send_open_loop(producer, topic, requests, rate)
    reader.wait_all([rid for rid, _, _ in requests], drain_s)
    cpu = {f"cpu:{name}": np.array([cpu_seconds(pid) - cpu_before[name], time.time() - wall_before])
           for name, pid in pids.items()}
    with reader.cond:
        answers = [reader.arrivals.get(rid) for rid, _, _ in requests]
    arrived = np.array([a.at_s if a else np.inf for a in answers])
    created = np.array([a.created_ms / 1e3 if a else np.inf for a in answers])
    return {"scheduled": scheduled, "sent": sent, "created": created, "arrived": arrived, **cpu}


def report_load(label: str, run: dict[str, np.ndarray], split: bool) -> LatencySummary:
    total = LatencySummary.of(run["arrived"] - run["scheduled"])
    answered = np.isfinite(run["arrived"])
    span = run["sent"][-1] - run["sent"][0]
    served = answered.sum() / (run["arrived"][answered].max() - run["scheduled"][0]) if answered.any() else 0.0
    print(f"{label}: {len(run['sent']):,} requests sent at {(len(run['sent']) - 1) / span:,.1f}/s achieved, "
          f"answered {served:,.1f}/s")
    print(f"  scheduled -> slate readable  {total.line()}")
    print(f"  scheduled -> actually sent   {LatencySummary.of(run['sent'] - run['scheduled']).line()}")
    if split and answered.any():
        to_send = LatencySummary.of((run["created"] - run["scheduled"])[answered])
        to_reader = LatencySummary.of((run["arrived"] - run["created"])[answered])
        print(f"  scheduled -> worker send     {to_send.line()}  (CreateTime, ms resolution)")
        print(f"  worker send -> readable      {to_reader.line()}")
    for key in (k for k in run if k.startswith("cpu:")):
        used, wall = run[key]
        print(f"  CPU of {key[4:]:8s} {used:6.2f} s in {wall:5.1f} s = {used / wall:4.0%} of a core, "
              f"{used / len(run['sent']) * 1e3:6.2f} ms per request")
    return total


def in_process_baseline(workload: Workload, requests, n_draws: int) -> dict[str, LatencySummary]:  # type: ignore[no-untyped-def]
    """The worker's per-request CPU work, here: decode, Engine.rank, WorkerCore.rank, slate encode;
    with one BLAS thread, as the worker (slatestream/threads.py: ~10x slower ranking without)."""
    use_one_blas_thread()
    encoder = HashingEncoder(dim=DIM)

    def embed(items: list[Item]) -> np.ndarray:
        return encoder.encode([item.text() for item in items])

    config = SlatestreamConfig(embedding={"dim": DIM}).with_engine(n_draws=n_draws)  # `slatestream worker --n-draws N`
    core = WorkerCore(config, SharedTables(), embed, DIM, 0)

    def record(kind: str, n: int, event) -> Record:  # type: ignore[no-untyped-def]
        key = event.item_id if kind == "items" else event.user_id  # the keys the worker checks
        return Record(kind, kind, 0, n, key.encode(), encode_event(event))

    core.add_items([record("items", n, item) for n, item in enumerate(workload.items)])
    core.rank([record("requests", n, request) for n, request in enumerate(workload.requests)])
    core.learn([record("impressions" if e.type == "impression" else "clicks", n, e)
                for n, e in enumerate(workload.feedback())])
    if core.counts.dead_lettered:  # a baseline that dead-letters measures nothing the worker does
        raise RuntimeError(f"the in-process baseline dead-lettered records: {core.counts}")
    times: dict[str, list[float]] = {"decode_event(RankRequest)": [], "Engine.rank": [],
                                     "encode_event(Slate)": [], "WorkerCore.rank + encode": []}
    engine = core.engine(0)
    for n, (_, _, value) in enumerate(requests):
        t0 = time.perf_counter()
        request = decode_event(value)
        t1 = time.perf_counter()
        assert isinstance(request, RankRequest)
        slate = engine.rank(request)
        t2 = time.perf_counter()
        encode_event(slate)
        t3 = time.perf_counter()
        slates, _ = core.rank([Record("requests", "requests", 0, n, request.user_id.encode(), value)])
        if not isinstance(slates[0], Slate):
            raise RuntimeError(f"the in-process baseline could not rank a request: {slates[0]}")
        encode_event(slates[0])
        t4 = time.perf_counter()
        for key, spent in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            times[key].append(spent)
    return {key: LatencySummary.of(values) for key, values in times.items()}


def print_profile(path: Path) -> None:
    stats = pstats.Stats(str(path))
    wanted = ("core.py:rank", "engine.py:rank", "events.py:decode_event", "events.py:encode_event",
              "linear_ts.py:sample_scores", "slates.py:build_slate", "table_store.py:put", "worker.py:requests",
              "worker.py:feedback", "topics.py:send", "{method 'poll' of 'select.epoll' objects}")
    print(f"worker profile ({path}), cumulative seconds over the whole worker run:")
    for (filename, _, name), (_, calls, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        label = f"{Path(filename).name}:{name}" if filename != "~" else name
        if any(label.endswith(w) for w in wanted):
            per_call_ms = cumulative / calls * 1e3
            print(f"  {label:60s} calls {calls:8d}  cum {cumulative:8.2f} s  per call {per_call_ms:8.3f} ms")
    stats.sort_stats("tottime").print_stats(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=500.0, help="requests per second (open loop)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the measured load")
    parser.add_argument("--candidates", type=int, default=1000)
    parser.add_argument("--items", type=int, default=2000, help="catalog size")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--freshness-users", type=int, default=20)
    parser.add_argument("--poll-ms", type=float, default=10.0, help="freshness: a rank request every this many ms")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--n-draws", type=int, default=64, help="the worker's --n-draws (its default: 64)")
    parser.add_argument("--warmup-s", type=float, default=1.0)
    parser.add_argument("--drain-s", type=float, default=30.0, help="wait this long for the last answers")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile-worker", type=Path, default=None)
    parser.add_argument("--worker-gc-young-threshold", type=int, default=None,
                        help="the worker's --gc-young-threshold (its default: 50,000; Python's: 700)")
    args = parser.parse_args()
    if args.rate <= 0 or args.seconds <= 0 or args.freshness_users < 0:
        parser.error("--rate and --seconds must be > 0, --freshness-users >= 0")
    rng = np.random.default_rng(args.seed)
    workload = make_workload(n_users=args.users, n_items=args.items, n_requests=2 * args.users, shown=5,
                             click_rate=0.5, seed=args.seed)
    item_ids = [item.item_id for item in workload.items]
    users = sorted({request.user_id for request in workload.requests})
    count, warm_count = int(args.rate * args.seconds), int(args.rate * args.warmup_s)
    loads = {name: (encoded_requests(f"{name}-warm-", warm_count, users, item_ids, args.candidates, rng),
                    encoded_requests(f"{name}-", count, users, item_ids, args.candidates, rng))
             for name in ("lat", "echo")}
    worker_args = ("--encoder", "hashing", "--dim", str(DIM), "--n-draws", str(args.n_draws), "--seed", str(args.seed))
    if args.worker_gc_young_threshold is not None:
        worker_args += ("--gc-young-threshold", str(args.worker_gc_young_threshold))
    started = time.monotonic()
    with load_broker().KafkaBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        settings = StreamSettings(broker_url=broker.url, topic_prefix="lat.", partitions=args.partitions,
                                  broker_session_timeout_s=6.0)
        echo_settings = StreamSettings(broker_url=broker.url, topic_prefix="echo.", partitions=args.partitions)
        names, echo_names = TopicNames.from_settings(settings), TopicNames.from_settings(echo_settings)
        ensure_topics(settings)
        ensure_control_topic(settings)
        ensure_topics(echo_settings)
        reader = SlateReader(settings, [names.slates, echo_names.slates])
        producer = make_producer(settings)
        store, log = Path(tmp) / "store", Path(tmp) / "worker.log"
        worker = WorkerProcess(settings, store, log, worker_args, profile_path=args.profile_worker)
        with worker:
            worker.wait_ready()
            publish(settings, workload.items)
            wait_counts(worker, len(workload.items), ("items",))
            publish(settings, workload.requests)
            if reader.wait_all([r.request_id for r in workload.requests], 120):
                raise TimeoutError("the worker did not rank the warm-up requests")
            feedback = workload.feedback()
            publish(settings, feedback)
            wait_counts(worker, len(feedback), ("learned", "dead_lettered"))
            print(f"ready after {time.monotonic() - started:.0f} s: {len(item_ids):,} items, {len(feedback):,} "
                  f"warm-up impressions+clicks learned; now {args.rate:g} requests/s for {args.seconds:g} s")
            assert worker.process is not None
            collector_before = worker.collector() or "none logged yet"
            pids = {"worker": worker.process.pid, "broker": broker.pid, "bench": os.getpid()}
            run_load(producer, reader, names.requests, loads["lat"][0], args.rate, args.drain_s, pids)
            worker_run = run_load(producer, reader, names.requests, loads["lat"][1], args.rate, args.drain_s, pids)
            # freshness runs with no other load: let a backlog that outlived --drain-s finish first
            reader.wait_all([rid for rid, _, _ in loads["lat"][1]], 300)
            probe = FreshnessProbe(producer, reader, names, args.poll_ms / 1e3, timeout_s=30.0)
            samples = []
            for n in range(args.freshness_users):
                candidates = tuple(item_ids[int(row)] for row in rng.choice(len(item_ids), 10, replace=False))
                samples.append(probe.probe(str(n), users[n % len(users)], candidates))
            counts, collector_after = worker.counts(), worker.collector()
        echo = subprocess.Popen(
            [sys.executable, "-m", "bench.latency_support", broker.bootstrap, echo_names.requests, echo_names.slates,
             str(args.partitions)],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
        )
        try:
            assert echo.stdout is not None
            if "echo ready" not in echo.stdout.readline():
                raise RuntimeError("the echo service did not start")
            pids = {"echo": echo.pid, "broker": broker.pid, "bench": os.getpid()}
            run_load(producer, reader, echo_names.requests, loads["echo"][0], args.rate, args.drain_s, pids)
            echo_run = run_load(producer, reader, echo_names.requests, loads["echo"][1], args.rate, args.drain_s, pids)
        finally:
            echo.terminate()
            echo.wait(timeout=30)
            reader.close()
            producer.close()
    sample = loads["lat"][1][: min(count, 2000)]
    local = in_process_baseline(workload, sample, args.n_draws)

    print(f"\nworker latency: {args.candidates} candidates, k=10, d={DIM}, n_draws {args.n_draws}, "
          f"{args.partitions} partitions, catalog {len(item_ids):,}, {len(users)} users; times are wall clock, "
          "'readable' = returned by a kafka-python consumer in the bench process")
    worker_total = report_load("worker (Faust, ranking)", worker_run, split=True)
    echo_total = report_load("echo service (aiokafka, no ranking, same broker)", echo_run, split=True)
    if reader.errors:
        print(f"  ({reader.errors} answers were slate errors: the request could not be ranked)")
    print(f"in process, same requests (n={len(sample)}), dict table, one at a time:")
    for key, summary in local.items():
        print(f"  {key:28s} {summary.line()}")
    full = local["WorkerCore.rank + encode"]
    print(f"ratio worker / echo:        p50 {worker_total.p50 / echo_total.p50:8.1f}x   "
          f"p99 {worker_total.p99 / echo_total.p99:8.1f}x")
    print(f"ratio worker / in-process:  p50 {worker_total.p50 / full.p50:8.1f}x   "
          f"p99 {worker_total.p99 / full.p99:8.1f}x")
    print(f"one core's capacity for this work: ~{1e3 / full.mean:,.0f} requests/s at the in-process mean "
          f"(the goal needs {args.rate:g}/s in one worker process)")
    print(f"goal p99 <= 25 ms: {'met' if worker_total.p99 <= 25 else 'NOT met'} (p99 {worker_total.p99:.1f} ms)")
    if samples:
        impression = LatencySummary.of([s.impression_s for s in samples])
        click = LatencySummary.of([s.click_s for s in samples])
        raised = sum(s.direction > 0 for s in samples)
        print(f"freshness, {len(samples)} users, one at a time, a poll every {args.poll_ms:g} ms, no other load:")
        print(f"  impression -> slate std changed  {impression.line()}")
        print(f"  click -> slate mean changed      {click.line()}   (mean raised in {raised}/{len(samples)})")
        print(f"goal click freshness p99 < 1 s: {'met' if click.p99 < 1000 else 'NOT met'}")
    print(f"worker counts (last log line): {counts}")
    print(f"worker collector (young threshold {args.worker_gc_young_threshold or 'the worker default'}), "
          f"its last log line before the load: {collector_before}; after the freshness probes: {collector_after}")
    print(f"total {time.monotonic() - started:.0f} s; command: .venv/bin/python bench/worker_latency.py "
          + " ".join(sys.argv[1:]))
    if args.profile_worker:
        print_profile(args.profile_worker)


if __name__ == "__main__":
    main()
