"""Rank latency while a worker learns a backlog: what requests wait for while feedback catches up.

    .venv/bin/python bench/backlog_latency.py [--backlog 300000] [--rate 50] [--seconds 20]
        [--worker-arg=--batch-size=1000]

Starts its own broker and one worker (hashing encoder, d = 32, 64 draws), ranks one request of
each of --users users and learns its impression (the warm-up), stops the worker, publishes a
backlog of --backlog impressions (5 random items each, users drawn uniformly), restarts the
worker on the same store (a deploy or a crash: the lag it comes back to) and, once it answers a
first request (its partitions assigned and recovered), sends rank requests (1,000 candidates)
open loop at --rate for --seconds. The worker learns the rest of the backlog while it serves
them. Printed: latency (scheduled -> slate readable) per second of the load with how much of
the backlog the worker had learned (its logged counts, every 5 s), the requests sent while it
was learning against those sent after, and the ratio.
--worker-arg passes options to `slatestream worker` (e.g. `--batch-size=1000`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.command_line import command_line  # noqa: E402
from bench.latency_support import (  # noqa: E402
    LatencySummary,
    SlateReader,
    encoded_requests,
    make_producer,
    send_open_loop,
)
from bench.scale_support import load_broker  # noqa: E402
from online.events import Impression, RankRequest, ShownItem, encode_event  # noqa: E402
from streams.client import event_key  # noqa: E402
from streams.control import ensure_control_topic  # noqa: E402
from streams.settings import StreamSettings  # noqa: E402
from streams.testing import WorkerProcess, make_workload, publish  # noqa: E402
from streams.testing.workload import T0  # noqa: E402
from streams.topics import TopicNames, ensure_topics  # noqa: E402


def backlog_impressions(count: int, users: list[str], item_ids: list[str],
                        rng: np.random.Generator) -> list[Impression]:
    """`count` impressions of 5 distinct random items for users drawn uniformly (no clicks: a
    click needs a request the worker ranked)."""
    user_rows = rng.integers(len(users), size=count)
    shown = [rng.choice(len(item_ids), 5, replace=False) for _ in range(count)]
    return [Impression(event_id=f"backlog-{n}", request_id=f"backlog-r{n}", user_id=users[int(user_rows[n])],
                       time=T0, shown=tuple(ShownItem(item_id=item_ids[int(i)], position=p)
                                            for p, i in enumerate(shown[n])))
            for n in range(count)]


def watch_learned(worker: WorkerProcess, stop: threading.Event, timeline: list[tuple[float, int]]) -> None:
    """Append (time.time(), learned) whenever the worker's logged count changes, until `stop`."""
    last = -1
    while not stop.is_set():
        learned = worker.counts().get("learned", 0)
        if learned != last:
            timeline.append((time.time(), learned))
            last = learned
        stop.wait(0.25)


def wait_serving(producer, reader: SlateReader, topic: str, user: str, item_ids: list[str],  # type: ignore[no-untyped-def]
                 timeout_s: float = 120.0) -> float:
    """Send a rank request every 50 ms until one is answered (the restarted worker holds its
    partitions and their state, and ranks between learn calls); the seconds that took."""
    started = time.monotonic()
    for n in range(int(timeout_s / 0.05)):
        request = RankRequest(request_id=f"probe-{n}", user_id=user, candidates=tuple(item_ids[:10]), k=3)
        producer.send(topic, key=event_key(request), value=encode_event(request))
        producer.flush()
        if not reader.wait_all([request.request_id], 0.05):
            return time.monotonic() - started
        with reader.cond:
            if any(rid.startswith("probe-") for rid in reader.arrivals):
                return time.monotonic() - started
    raise TimeoutError("the restarted worker answered no request")


def learned_by(timeline: list[tuple[float, int]], at: float) -> int:
    """The worker's last logged learned count at or before `at` (0 before any)."""
    return max((learned for seen, learned in timeline if seen <= at), default=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backlog", type=int, default=300_000, help="impressions waiting when the worker restarts")
    parser.add_argument("--rate", type=float, default=50.0, help="rank requests per second (open loop)")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--users", type=int, default=4000)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--candidates", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker-arg", action="append", default=[], help="an option for `slatestream worker`")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    workload = make_workload(n_users=args.users, n_items=args.items, n_requests=args.users, shown=5, click_rate=0.0,
                             seed=args.seed)
    item_ids = [item.item_id for item in workload.items]
    users = sorted({request.user_id for request in workload.requests})
    backlog = backlog_impressions(args.backlog, users, item_ids, rng)
    load = encoded_requests("lat-", int(args.rate * args.seconds), users, item_ids, args.candidates, rng)
    worker_args = ("--encoder", "hashing", "--dim", "32", "--n-draws", "64", "--seed", str(args.seed),
                   *args.worker_arg)
    with load_broker().KafkaBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        settings = StreamSettings(broker_url=broker.url, topic_prefix="backlog.", partitions=4,
                                  broker_session_timeout_s=6.0)
        names = TopicNames.from_settings(settings)
        ensure_topics(settings)
        ensure_control_topic(settings)
        reader = SlateReader(settings, [names.slates])
        producer = make_producer(settings)
        store, log = Path(tmp) / "store", Path(tmp) / "worker.log"
        warm = len(workload.impressions)
        with WorkerProcess(settings, store, log, worker_args) as worker:
            worker.wait_ready()
            publish(settings, [*workload.items, *workload.requests])
            if reader.wait_all([r.request_id for r in workload.requests], 300):
                raise TimeoutError("the worker did not rank the warm-up requests")
            publish(settings, workload.impressions)
            deadline = time.monotonic() + 300
            while worker.counts().get("learned", 0) < warm:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the worker did not learn the {warm:,} warm-up impressions")
                time.sleep(0.5)
        started = time.perf_counter()
        publish(settings, backlog)
        print(f"backlog: {len(backlog):,} impressions published in {time.perf_counter() - started:.1f} s while the "
              f"worker was down; {len(users):,} users, {len(item_ids):,} items; worker args {' '.join(worker_args)}")
        timeline: list[tuple[float, int]] = []
        stop = threading.Event()
        with WorkerProcess(settings, store, log, worker_args) as worker:
            worker.wait_ready()
            watcher = threading.Thread(target=watch_learned, args=(worker, stop, timeline), daemon=True)
            watcher.start()
            serving_after = wait_serving(producer, reader, names.requests, users[0], item_ids)
            scheduled, _ = send_open_loop(producer, names.requests, load, args.rate)
            reader.wait_all([rid for rid, _, _ in load], 60)
            while learned_by(timeline, time.time()) < len(backlog) and time.time() < scheduled[-1] + 120:
                time.sleep(0.5)
            stop.set()
            watcher.join()
        with reader.cond:
            arrived = np.array([reader.arrivals[rid].at_s if rid in reader.arrivals else np.inf for rid, _, _ in load])
        reader.close()
        producer.close()
    learned_then = learned_by(timeline, scheduled[0])
    print(f"the restarted worker answered a first request {serving_after:.1f} s after it was ready; the load "
          f"began with {1 - learned_then / len(backlog):.0%} of the backlog still to learn (its last logged count)")
    report(scheduled, arrived, timeline, len(backlog))  # the restarted worker counts from 0


def report(scheduled: np.ndarray, arrived: np.ndarray, timeline: list[tuple[float, int]], backlog: int) -> None:
    """Per second of the load: latency and the backlog learned; then during / after the backlog."""
    latency = arrived - scheduled
    done_at = next((seen for seen, learned in timeline if learned >= backlog), np.inf)
    print("second  requests   p50 ms   p99 ms   max ms   backlog learned (worker's log, every 5 s)")
    for second in range(int(np.ceil(scheduled[-1] - scheduled[0]))):
        inside = (scheduled >= scheduled[0] + second) & (scheduled < scheduled[0] + second + 1)
        if inside.any():
            p50, p99, top = np.percentile(latency[inside] * 1e3, [50, 99, 100])
            learned = learned_by(timeline, scheduled[0] + second + 1)
            print(f"{second:6d} {inside.sum():9d} {p50:8.1f} {p99:8.1f} {top:8.1f}   {learned / backlog:6.1%}")
    during, after = scheduled < done_at, scheduled >= done_at
    print(f"backlog learned {done_at - scheduled[0]:.1f} s after the first request (to the log line's 5 s)")
    summaries = {name: LatencySummary.of(latency[mask]) for name, mask in (("during", during), ("after", after))
                 if mask.any()}
    for name, summary in summaries.items():
        print(f"  requests sent {name:6s} the backlog: {summary.line()}")
    if len(summaries) == 2:
        print(f"ratio during / after: p50 {summaries['during'].p50 / summaries['after'].p50:.2f}x, "
              f"p99 {summaries['during'].p99 / summaries['after'].p99:.2f}x")
    print(command_line("bench/backlog_latency.py"))


if __name__ == "__main__":
    main()
