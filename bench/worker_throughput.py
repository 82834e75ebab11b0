"""Feedback throughput of ONE worker through a real Kafka broker, next to a bare consumer.

    .venv/bin/python bench/worker_throughput.py [--requests 30000] [--users 2000] [--shown 5] [--batch-size N]
        [--warm | --steady] [--no-floors] [--peer both|at-least-once|exactly-once|none] [--peer-gc-young-threshold N]
        [--worker-gc-young-threshold N]
        [--broker-dir DIR] [--store-dir DIR]
    OMP_NUM_THREADS=1 taskset -c 0 .venv/bin/python bench/worker_throughput.py --learn-only 3   # no broker
    OMP_NUM_THREADS=1 .venv/bin/python bench/worker_throughput.py --learn-only 5 --collector both [--learn-group N]

Starts its own broker (deploy/kafka KafkaBroker). Phase 1: a worker ranks every request
(clicks need their request known) and stops. Phase 2: the worker restarts on the same store and,
once ready and idle, is stopped (SIGSTOP) while every impression and click is published, then
continued (SIGCONT): the window runs from that moment (stamped by the bench) to the end of the
group commit that acked the last record (the state of every record then handed to the producer),
stamped by the worker in its log (wall clock); events/s = records committed / that window. The
worker's fetching of the backlog and aiokafka's parsing of it (Python, in Faust's consumer
thread) are inside the window, as they are inside a running worker's time. (Until 2026-12-07 the
backlog was published before the worker started and the window began at the lane's first list:
by then the consumer had fetched and parsed the whole backlog, one fetch of 105,058 records,
~0.3-0.4 s left outside the window: those figures overstate the worker, docs/worker.md.)
The bench waits on the worker's log (its counts, every 5 s) until it has taken every
record, touching no broker while the window runs, then until every partition's population
state in the state changelog holds the last record (read from the changelog's tail) and prints
when it saw that, a check from outside the worker. Baseline in the same run: a bare aiokafka
consume loop (assign all partitions, getmany until the end offsets) over the same records, timed
from its first records to its last, run twice and the faster kept (a loop of ~0.3 s can lose ~0.8 s
to one slow fetch).
Prints events/s of both and the ratio; the same bare loop decoding every value as the worker's
hot path does and learning nothing (the ceiling of any worker that validates its input with
this decoder); two more ceilings measured the same way over the
same records (bench/faust_floor.py): a Faust agent with the worker's app settings that only
counts, and one that also writes a 4.8 KB table value per record (Faust's cost of keeping
per-user state in a changelogged table); and, without Kafka, `WorkerCore.learn` over the same
records in this process (the worker's own work: decode, dedupe, learn; dict state), each time a
fresh core over the state one in-process ranking of the requests left, as the phase-2 worker
starts fresh over its store (bench/worker_baselines.py, `rank_in_process`); in the worker's
groups once more while the broker is busy, before it stops (bench/broker_contention.py,
`learn_beside_busy_broker`: the learning pinned to one CPU, the broker and a producer loading
it to the other), because the worker's learning always runs beside its busy broker and the
other in-process baselines run after the broker stopped.
The peer (bench/quix_peer.py, its own process, --peer): a quix-streams 3.28.1 application that
keeps a per-user counter in its RocksDB state, over the same records from the same broker,
at-least-once and exactly-once, timed from its first record to its last checkpoint commit;
prints its records/s and worker / quix. quixstreams is not installed with the project: install
it for this bench with `.venv/bin/python bench/quix_peer.py --install` (into .data/quix-site);
without it the bench prints that the peer was skipped and why.
With --warm the phase-2 users are not new: a worker first learns the first half of the feedback
(untimed) and stops, and the timed worker restarts over the states, recent ids and offsets it
stored to learn the second half (what a worker restarted mid-stream does; without --warm every
user's state is read as absent: a cold start); the in-process baselines learn the same second
half from the state an in-process learning of the first half left; the bare loops and the peer
read every record of the topics, both halves.
With --steady the users are in the worker's memory: the timed worker itself learns the first half
(untimed), is stopped (SIGSTOP) while the second half is published, and is timed from its being
continued (SIGCONT, stamped by the bench: the first fetch of the backlog is inside the window) to
its last commit, its counts and learn calls those since then; the in-process baselines learn the
first half untimed with the same core before the timed second half (`steady_after`).
Where the broker's log and the stores live decides much of the worker's figure on a VM disk (the
worker's changelog is most of what the broker writes): --broker-dir and --store-dir place them
(default: the system's temporary directory), and the bench prints each one's filesystem.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from slatestream.hugepages import no_numpy_hugepages  # noqa: E402

no_numpy_hugepages()  # before numpy's import: the in-process baselines allocate as the worker does

from bench.broker_contention import LOAD_RECORD_BYTES, learn_beside_busy_broker  # noqa: E402
from bench.broker_phases import (  # noqa: E402
    SESSION_TIMEOUT_S,
    backlog_while_stopped,
    feedback_targets,
    logged_progress,
    publish_timed,
    wait_learned,
    wait_received,
    wait_slates,
)
from bench.command_line import command_line  # noqa: E402
from bench.host_state import filesystem_of, steal_s  # noqa: E402
from bench.learn_only import learn_collector_pairs, learn_heap_pairs, learn_only  # noqa: E402
from bench.scale_support import load_broker  # noqa: E402
from bench.throughput_series import PEER_GOAL, write_result  # noqa: E402
from bench.worker_baselines import (  # noqa: E402
    HEAP,
    bare_consume,
    faust_floor,
    in_process_learn,
    learned_before,
    learning_budget,
    quix_available,
    quix_peer,
    rank_in_process,
    steady_after,
)
from streams.control import ensure_control_topic  # noqa: E402
from streams.settings import StreamSettings  # noqa: E402
from streams.testing import (  # noqa: E402
    WorkerProcess,
    make_workload,
    publish,
)
from streams.topics import TopicNames, ensure_topics  # noqa: E402
from streams.worker.config import WorkerConfig  # noqa: E402
from streams.worker.recent_ids import RECENT_REQUESTS  # noqa: E402


def clicks_beyond_recent(workload, recent: int) -> int:  # type: ignore[no-untyped-def]
    """Clicks whose request is no longer among its user's last `recent` requests once every
    request is ranked (this bench ranks all requests before it publishes any feedback): the
    worker dead-letters them (UnknownRequestError), so such a workload cannot be learned whole.
    `recent`: the worker's recent-requests cap per user (WorkerCore's recent_requests)."""
    order: dict[str, list[str]] = {}
    for request in workload.requests:
        order.setdefault(request.user_id, []).append(request.request_id)
    kept = {request_id for ids in order.values() for request_id in ids[-recent:]}
    return sum(click.request_id not in kept for click in workload.clicks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30_000)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--shown", type=int, default=5)
    parser.add_argument("--propensities", action="store_true",
                        help="impressions log each shown item's propensity (k / 64), as those of served slates do")
    parser.add_argument("--batch-size", type=int, default=WorkerConfig.batch_size,
                        help="the worker's --batch-size (default: the worker's own)")
    parser.add_argument("--flush-interval-ms", type=float, default=None, help="the worker's --flush-interval-ms")
    parser.add_argument("--warm", action="store_true",
                        help="time users with stored state: a worker learns the first half of the feedback "
                             "(untimed) and stops; the timed worker restarts over that state and learns the second "
                             "half (the in-process baselines too, from the state the first half left)")
    parser.add_argument("--steady", action="store_true",
                        help="time users held in memory: the timed worker learns the first half of the feedback "
                             "(untimed), is stopped (SIGSTOP) while the second half is published, and is timed from "
                             "its being continued (SIGCONT) to its last commit (the in-process baselines: the same "
                             "core learns the first half untimed, then the second half timed)")
    parser.add_argument("--no-floors", action="store_true",
                        help="skip the two Faust agents (quicker; the bare consumer and in-process baselines stay)")
    parser.add_argument("--peer", choices=("both", "at-least-once", "exactly-once", "none"), default="both",
                        help="the quix-streams peer's processing guarantees (needs bench/quix_peer.py --install)")
    parser.add_argument("--worker-gc-young-threshold", type=int, default=None, metavar="N",
                        help="the worker's --gc-young-threshold (default: the worker's own, 50,000)")
    parser.add_argument("--peer-gc-young-threshold", type=int, default=None, metavar="N",
                        help="run the peer with this young-generation threshold of Python's cyclic collector "
                             "(default: Python's own, 700; the worker sets --gc-young-threshold, 50,000, once "
                             "its partitions are assigned)")
    parser.add_argument("--broker-dir", type=Path, default=None,
                        help="make the broker's data directory (its log) under this directory (default: the "
                             "system's temporary directory, TMPDIR); /dev/shm puts it on tmpfs")
    parser.add_argument("--store-dir", type=Path, default=None,
                        help="make the worker's store and the quix-streams peer's state under this directory "
                             "(default: the system's temporary directory)")
    parser.add_argument("--learn-only", type=int, default=0, metavar="RUNS",
                        help="no broker: time WorkerCore.learn in process RUNS times in CPU seconds (pin it: "
                             "OMP_NUM_THREADS=1 taskset -c 0) and exit")
    parser.add_argument("--profile-worker", type=Path, default=None,
                        help="run the phase-2 worker under cProfile and write its stats here (slower)")
    parser.add_argument("--heap", choices=("both",), default=None,
                        help="with --learn-only: pairs of fresh processes without and with the heap tuning "
                             "(slatestream/heap.py; SLATESTREAM_HEAP_TUNING=off turns it off for the worker and "
                             "this process alike)")
    parser.add_argument("--collector", choices=("both",), default=None,
                        help="with --learn-only: pairs of learnings with the collector's young threshold at "
                             "Python's default and at the worker's (streams/worker/collector.py; each learn call "
                             "runs with the collector off since 2026-12-07, so only the passes between calls differ)")
    parser.add_argument("--result-json", type=Path, default=None, metavar="PATH",
                        help="also write the run's figures here as JSON (bench/throughput_series.py reads them)")
    parser.add_argument("--learn-group", type=int, default=None, metavar="N",
                        help="with --collector: learn in groups of N records of one partition, as the worker "
                             "does (its largest learn call: the bench's 'partition groups' line; default: lists "
                             "of 2,000)")
    args = parser.parse_args()
    if args.warm and args.steady:
        parser.error("--warm and --steady time different states: choose one")
    if args.heap and args.learn_only:
        learn_heap_pairs(args.learn_only)
        return
    workload = make_workload(n_users=args.users, n_items=args.items, n_requests=args.requests, shown=args.shown,
                             click_rate=0.5, seed=0, propensities=args.propensities)
    if args.learn_only and args.collector:
        learn_collector_pairs(workload, args.learn_only, args.learn_group)
        return
    if args.learn_only:
        learn_only(workload, args.learn_only)
        return
    beyond = clicks_beyond_recent(workload, RECENT_REQUESTS)
    if beyond:
        busiest = max(Counter(request.user_id for request in workload.requests).values())
        parser.error(f"{beyond:,} clicks would be dead-lettered: a user has up to {busiest} requests, and all are "
                     f"ranked before any feedback is published, so clicks on requests older than the user's last "
                     f"{RECENT_REQUESTS} are unknown to the worker; raise --users or lower --requests")
    broker_module = load_broker()
    started_at = time.strftime("%Y-%m-%d %H:%M", time.gmtime())  # the run's start (UTC), for --result-json
    mode = "warm" if args.warm else "steady" if args.steady else "cold"
    feedback = workload.feedback()
    worker_args = ("--encoder", "hashing", "--dim", "32", "--n-draws", "8", "--batch-size", str(args.batch_size),
                   *(() if args.flush_interval_ms is None else ("--flush-interval-ms", str(args.flush_interval_ms))),
                   *(() if args.worker_gc_young_threshold is None
                     else ("--gc-young-threshold", str(args.worker_gc_young_threshold))))
    with (tempfile.TemporaryDirectory(dir=args.broker_dir) as broker_tmp,
          broker_module.KafkaBroker(data_dir=Path(broker_tmp) / "broker") as broker,
          tempfile.TemporaryDirectory(dir=args.store_dir) as tmp):
        print(f"broker's log under {broker_tmp} ({filesystem_of(Path(broker_tmp))}), worker store and peer state "
              f"under {tmp} ({filesystem_of(Path(tmp))})")
        settings = StreamSettings(broker_url=broker.url, topic_prefix="bench.", partitions=4,
                                  broker_session_timeout_s=SESSION_TIMEOUT_S)
        names = TopicNames.from_settings(settings)
        ensure_topics(settings)
        ensure_control_topic(settings)
        publish(settings, [*workload.items, *workload.requests])
        store, log = Path(tmp) / "store", Path(tmp) / "worker.log"  # the timed worker's log: its lines alone
        with WorkerProcess(settings, store, Path(tmp) / "worker-ranking.log", worker_args) as worker:
            worker.wait_ready()
            ranked_in = wait_slates(settings, len(workload.requests), 900)
        print(f"phase 1: {len(workload.requests):,} requests ranked in {ranked_in:.1f} s after ready")
        first = feedback[: len(feedback) // 2] if args.warm or args.steady else []  # learned untimed
        timed = feedback[len(first) :]  # what the window covers
        if args.warm:
            published_in = publish_timed(settings, first)
            with WorkerProcess(settings, store, Path(tmp) / "worker-warm-up.log", worker_args) as worker:
                worker.wait_ready()
                ready_at = time.time()
                learned_at = wait_learned(settings, feedback_targets(settings), time.monotonic() + 900)[1]
            print(f"--warm: the first {len(feedback) - len(timed):,} impressions+clicks published in "
                  f"{published_in:.1f} s, learned by a worker within {learned_at - ready_at:.1f} s of its being ready "
                  f"(untimed), which then stopped: the timed worker restarts over users whose states, recent ids "
                  f"and offsets are stored")
        learned_first = len(first) if args.steady else 0  # what the timed worker learns before its window
        if learned_first:
            publish(settings, first)
        with WorkerProcess(settings, store, log, worker_args, profile_path=args.profile_worker) as worker:
            worker.wait_ready()
            deadline = time.monotonic() + 900
            before, continued_at = backlog_while_stopped(settings, worker, learned_first, timed, deadline)
            target = feedback_targets(settings)
            stolen_before, faults_before = steal_s(), worker.minor_faults()
            wait_received(worker, learned_first + len(timed), deadline)  # the log only: nothing else runs in the window
            stolen, faults_after = steal_s() - stolen_before, worker.minor_faults()
            read_from, seen_at = wait_learned(settings, target, deadline)
            time.sleep(5.5)  # the next periodic log lines hold the counts, batch statistics and window
            counts = worker.counts()
            lines = worker.log_text().splitlines()
            batch_lines = [line for line in lines if "batches " in line]
            changelog_lines = [line for line in lines if "state records sent" in line]
            progress, peak_mib, worker_collector = logged_progress(lines), worker.peak_rss_mib(), worker.collector()
        topics = [names.impressions, names.clicks]
        # each loop twice, the faster kept: a loop of ~0.3 s can lose ~0.8 s to one slow fetch (seen twice)
        bare_s = min(asyncio.run(bare_consume(settings, topics, len(feedback))) for _ in range(2))
        decode_s = min(asyncio.run(bare_consume(settings, topics, len(feedback), decode=True)) for _ in range(2))
        floors = {mode: faust_floor(settings, [names.impressions, names.clicks], len(feedback), mode)
                  for mode in (() if args.no_floors else ("count", "table"))}
        guarantees = {"both": ("at-least-once", "exactly-once"), "none": ()}.get(args.peer, (args.peer,))
        peers = {guarantee: quix_peer(settings, [names.impressions, names.clicks], guarantee, Path(tmp),
                                      args.peer_gc_young_threshold)
                 for guarantee in (guarantees if guarantees and quix_available() else ())}
        ranked = rank_in_process(workload, settings.partitions)  # once, for every in-process baseline
        if args.warm:  # the in-process baselines learn what the timed worker learned, from the same state
            ranked = learned_before(ranked, len(first))
        if args.steady:  # ... and with the same core that learned the first half, untimed
            ranked = steady_after(ranked, len(first))
        if before is not None:  # --steady: the worker's counts and learn calls since it was continued
            progress = progress.since(before)
        (taken, first_list_at, committed, last_at), learned = progress
        group = learned.largest  # each partition's share of a backlog list is one learn call
        beside = (learn_beside_busy_broker(ranked, group, broker.bootstrap, broker.pid)
                  if len(os.sched_getaffinity(0)) > 1 else None)
    core_s = in_process_learn(ranked, 2_000).seconds
    grouped = in_process_learn(ranked, 2_000, group=group)
    grouped_s = grouped.seconds
    if committed != taken or committed < len(timed):  # a partial window, or a rebalance moved records
        raise RuntimeError(f"the worker's window covers {committed:,} committed of {taken:,} taken records, "
                           f"{len(timed):,} published for it: not one clean pass over the backlog")
    worker_s = last_at - continued_at
    worker_rate, bare_rate = committed / worker_s, len(feedback) / bare_s
    lag = first_list_at - continued_at  # --steady: its first list ever, before the first half
    first_list = "" if before is not None else f"its lane took its first list {lag:.3f} s later; "
    print(f"worker: {committed:,} of {len(timed):,} events committed in {worker_s:.2f} s = {worker_rate:,.0f} "
          f"events/s (from its being continued over the backlog, stamped by the bench, to its last group commit, "
          f"stamped by the worker; "
          f"{first_list}"
          f"{taken:,} taken); the bench's changelog read that first found every last state ran from "
          f"{read_from - continued_at:.2f} to {seen_at - continued_at:.2f} s")
    print(f"bare aiokafka consume loop, same records (the faster of two): {bare_s:.2f} s = {bare_rate:,.0f} events/s")
    print(f"ratio worker / bare consumer: {worker_rate / bare_rate:.2f}")
    decode_rate = len(feedback) / decode_s
    print(f"the same loop decoding every value as the worker does (decode_feedback_many), nothing learned (the "
          f"faster of two): "
          f"{decode_s:.2f} s = {decode_rate:,.0f} events/s = {decode_rate / bare_rate:.2f} of the bare consumer; "
          f"worker / this: {worker_rate / decode_rate:.2f}")
    core_rate, grouped_rate = len(timed) / core_s, len(timed) / grouped_s
    print(f"WorkerCore.learn in this process, same records, dict state, batches of 2,000, heap tuning {HEAP}: "
          f"{core_rate:,.0f} events/s; "
          f"worker / this: {worker_rate / core_rate:.2f}")
    print(f"the same in the worker's partition groups (up to {group:,} records of one partition a learn call, "
          f"its largest; {learned.groups} learn calls in the worker, {committed / learned.groups:,.0f} records "
          f"on average): "
          f"{grouped_rate:,.0f} events/s; worker / this: {worker_rate / grouped_rate:.2f}")
    print(f"where the worker's window went: {worker_s:.2f} s = {learned.seconds:.2f} s in its learn calls "
          f"({learned.cpu_s:.2f} s of them on the CPU, {learned.seconds - learned.cpu_s:.2f} s waiting for a core) + "
          f"{worker_s - learned.seconds:.2f} s outside them (fetching, flushing, committing); in process the same "
          f"groups took {grouped.seconds:.2f} s ({grouped.cpu_s:.2f} s on the CPU): the worker's learning "
          f"{learned.cpu_s / grouped.cpu_s:.2f}x its CPU time here; the VM's CPUs were stolen {stolen:.2f} s "
          f"from the worker's start to its having taken every record")
    if beside is None:
        print("the same groups in process beside a busy broker: skipped (needs two CPUs)")
    else:
        busy, busy_taken = beside
        print(f"the same groups in process beside a busy broker (pinned to one CPU; the broker and a producer "
              f"sending it {busy_taken:,} records of {LOAD_RECORD_BYTES:,} bytes meanwhile pinned to the other): "
              f"{busy.seconds:.2f} s "
              f"({busy.cpu_s:.2f} s on the CPU) = {len(timed) / busy.seconds:,.0f} events/s; worker / this: "
              f"{worker_rate * busy.seconds / len(timed):.2f}; the worker's learning "
              f"{learned.cpu_s / busy.cpu_s:.2f}x its CPU time here")
    for mode, label in (("count", "Faust agent that only counts (same app settings)"),
                        ("table", "Faust agent writing one 4.8 KB table value per record")):
        if mode not in floors:
            continue
        floor = floors[mode]
        print(f"{label}: {floor['per_s']:,.0f} events/s (mean batch {floor['mean_batch']:.0f}); "
              f"worker / this: {worker_rate / floor['per_s']:.2f}")
    for guarantee, peer in peers.items():
        if peer["records"] != len(feedback):
            raise RuntimeError(f"the quix-streams peer ({guarantee}) counted {peer['records']:,} records of "
                               f"{len(feedback):,}")
        collector = ("Python's collector" if args.peer_gc_young_threshold is None
                     else f"collector young threshold {args.peer_gc_young_threshold:,}")
        print(f"quix-streams 3.28.1 peer, {guarantee}, {collector}, per-user counter in RocksDB state, same records: "
              f"{peer['records']:,.0f} in {peer['seconds']:.2f} s = {peer['per_s']:,.0f} records/s (first record "
              f"to its last checkpoint commit; the last record processed at {peer['processed_s']:.2f} s); "
              f"worker / quix: {worker_rate / peer['per_s']:.2f}")
        budget = learning_budget(peer["per_s"], decode_rate, grouped_rate)
        print(f"at {PEER_GOAL}x this peer an event may take {budget['per_event']:.1f} us; consuming and decoding it "
              f"take {budget['consume_decode']:.1f}, leaving {budget['left']:.1f} us for learning; WorkerCore.learn "
              f"takes {budget['learning']:.1f} us an event in process in the worker's groups, its decoding included")
    print(f"worker counts (last log line): {counts}")
    if batch_lines:
        print("worker " + batch_lines[-1].split("batches ", 1)[1])
    if changelog_lines:  # phase 2 only: the worker restarted for it
        print("worker changelog: " + changelog_lines[-1].split("changelog ", 1)[1])
    if faults_before is not None and faults_after is not None:
        print(f"worker minor page faults from its being ready to its having taken every record: "
              f"{faults_after - faults_before:,} ({(faults_after - faults_before) / committed:.2f} an event)")
    if worker_collector is not None:  # its cyclic garbage collector (streams/worker/collector.py)
        print(f"worker collector: {worker_collector}"
              + f"; worker peak resident memory {'unknown' if peak_mib is None else f'{peak_mib:,.0f} MiB'}")
    if args.result_json is not None:
        write_result(args.result_json, started_at=started_at, mode=mode, events=committed,
                     worker_events_per_s=worker_rate, worker_over_in_process=worker_rate / grouped_rate,
                     in_process_groups_events_per_s=grouped_rate, learn_wall_s=learned.seconds,
                     learn_cpu_s=learned.cpu_s, outside_s=worker_s - learned.seconds,
                     peer_records_per_s={guarantee: peer["per_s"] for guarantee, peer in peers.items()})
    print(command_line("bench/worker_throughput.py"))


if __name__ == "__main__":
    main()
