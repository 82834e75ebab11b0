"""What bench/worker_throughput.py sets the worker beside, over the same records in the same run.

- `bare_consume`: a bare aiokafka consume loop (the ceiling of the plumbing), optionally decoding
  every value as the worker's hot path does (the ceiling of any worker validating its input so);
- `rank_in_process` then `in_process_learn`: `WorkerCore.learn` in this process, no Kafka (the
  worker's own work), from the workload ranked once;
- `faust_floor`: bench/faust_floor.py, a Faust agent with the worker's app settings that only
  counts, or also writes a 4.8 KB table value per record;
- `quix_peer`: bench/quix_peer.py, a quix-streams 3.28.1 app keeping a per-user counter in its
  RocksDB state (issue 23's peer), and `learning_budget`: what the goal of PEER_GOAL x the peer
  leaves an event for learning.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal, NamedTuple, cast

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.throughput_series import PEER_GOAL
from encoders.hashing import HashingEncoder
from online.config import SlatestreamConfig
from online.events import Impression, encode_event
from online.wire import decode_feedback_many
from slatestream.heap import SWITCH, keep_freed_memory
from slatestream.threads import use_one_blas_thread
from streams.settings import StreamSettings
from streams.testing import SharedTables
from streams.worker.collector import YOUNG_THRESHOLD, CollectorClock
from streams.worker.collector import settle as settle_collector
from streams.worker.core import WorkerCore
from streams.worker.paths import by_partition
from streams.worker.records import Record

ROOT = Path(__file__).resolve().parents[1]


HEAP = "on" if os.environ.get(SWITCH) == "on" and keep_freed_memory() else "off"
"""Whether this process (the in-process baseline) has the heap tuning (slatestream/heap.py):
only with SLATESTREAM_HEAP_TUNING=on, as `--heap both` sets it; `slatestream worker` runs
without it, so the baseline does too."""


async def bare_consume(settings: StreamSettings, topics: list[str], expected: int, decode: bool = False) -> float:
    """Seconds a bare aiokafka loop takes to read `expected` records of `topics` from the start
    (from its first records to its last, as the worker's window and the peer's are timed);
    with `decode`, it also decodes each value as the worker's hot path does (decode_feedback_many:
    msgspec plus the checks that make it agree with pydantic) and fails on one it cannot vouch for."""
    kinds: dict[str, Literal["impression", "click"]] = {
        topic: "impression" if topic.endswith("impressions") else "click" for topic in topics}
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers(), group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(settings.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        count, start = 0, 0.0
        while count < expected:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            if batches and not start:  # timed from the first records, as the worker and the peer are
                start = time.perf_counter()
            for tp, records in batches.items():
                if decode:
                    kind = kinds[tp.topic]
                    values = [record.value for record in records if record.value is not None]  # no tombstones
                    if None in decode_feedback_many(values, [kind] * len(values)):
                        raise RuntimeError(f"a {kind} the fast decoder does not vouch for")
                    count += len(values)
                else:
                    for record in records:
                        count += record.value is not None
        return time.perf_counter() - start
    finally:
        await consumer.stop()


def learning_budget(peer_rate: float, decode_rate: float, core_rate: float) -> dict[str, float]:
    """What the goal leaves for learning, in microseconds an event, from one run's rates (events/s):
    `per_event` at PEER_GOAL x the peer, `consume_decode` what the bare consume loop that decodes
    every value takes of it, `left` the rest (what learning may take), and `learning` what
    WorkerCore.learn takes in process (its decoding included: ~2.5 us of it, decode_feedback_many)."""
    per_event, consume_decode = 1e6 / (PEER_GOAL * peer_rate), 1e6 / decode_rate
    return {"per_event": per_event, "consume_decode": consume_decode, "left": per_event - consume_decode,
            "learning": 1e6 / core_rate}


def partition_groups(records: list[Record], size: int) -> list[list[Record]]:
    """Each partition's records in consecutive groups of `size` (in order), the partitions taken in
    turn: what a worker learns when each `WorkerCore.learn` call gets `size` of one partition's."""
    parts = by_partition(records).values()
    longest = max(map(len, parts), default=0)
    return [part[start : start + size] for start in range(0, longest, size) for part in parts
            if part[start : start + size]]


def batch_groups(records: list[Record], batch: int) -> list[list[Record]]:
    """Consecutive lists of `batch` records, each split by partition (a worker's lists of `batch`)."""
    return [group for start in range(0, len(records), batch)
            for group in by_partition(records[start : start + batch]).values()]


class LearnTime(NamedTuple):
    """How long a timed learning took: `seconds` on the wall clock, `cpu_s` of them on the CPU
    (the calling thread's CPU time)."""

    seconds: float
    cpu_s: float


class RankedWorkload(NamedTuple):
    """A workload's requests ranked once in process (`rank_in_process`): what every timed
    learning of its feedback starts from, so a bench ranks once however often it learns.

    config: the cores' SlatestreamConfig; items: the item records (each core embeds them);
    table: the state table after the ranking (every request remembered for its clicks);
    feedback: the impression and click records, in log order within each partition;
    learned_first: records a core learns untimed, in the same lists, before it learns `feedback`
    (`steady_after`: the timed learning then finds their users in the core's memory)."""

    config: SlatestreamConfig
    items: list[Record]
    table: dict[bytes, bytes]
    feedback: list[Record]
    learned_first: tuple[Record, ...] = ()


def _bench_core(config: SlatestreamConfig, table: dict[bytes, bytes]) -> WorkerCore:
    """A WorkerCore over `table` (dict state), d = 32 hashing item vectors, seed 0; this process
    then uses one BLAS thread, as the worker does (slatestream/threads.py)."""
    use_one_blas_thread()
    encoder = HashingEncoder(dim=32)
    return WorkerCore(config, SharedTables(table), lambda items: encoder.encode([i.text() for i in items]), 32, 0)


def rank_in_process(workload, partitions: int, scenarios=None) -> RankedWorkload:  # type: ignore[no-untyped-def]
    """Rank every request of `workload` with a WorkerCore in this process (`partitions`
    partitions, keyed by user as the worker's topics are), so that clicks are known; the state
    it leaves and the feedback as records. `scenarios`: a SlatestreamConfig (default: the
    worker's default, d = 32, 8 draws). RuntimeError unless every request was ranked."""
    from streams.topics import partition_of

    config = scenarios or SlatestreamConfig().with_engine(n_draws=8)
    table: dict[bytes, bytes] = {}
    core = _bench_core(config, table)
    items = [Record("items", "items", 0, n, item.item_id.encode(), encode_event(item))
             for n, item in enumerate(workload.items)]
    core.add_items(items)
    next_offset: dict[tuple[str, int], int] = {}

    def record(kind: str, event) -> Record:  # type: ignore[no-untyped-def]
        partition = partition_of(event.user_id, partitions)
        offset = next_offset[kind, partition] = next_offset.get((kind, partition), -1) + 1
        return Record(kind, kind, partition, offset, event.user_id.encode(), encode_event(event))

    for request in workload.requests:
        core.rank([record("requests", request)])
    if core.counts.ranked != len(workload.requests) or core.counts.dead_lettered:
        raise RuntimeError(f"in-process ranking did not rank the workload: {core.counts}")
    feedback = [record("impressions" if isinstance(e, Impression) else "clicks", e) for e in workload.feedback()]
    return RankedWorkload(config, items, table, feedback)


def in_process_learn(ranked: RankedWorkload, batch: int, prepare=None,  # type: ignore[no-untyped-def]
                     group: int | None = None, young_threshold: int = YOUNG_THRESHOLD,
                     clock: CollectorClock | None = None) -> LearnTime:
    """Seconds WorkerCore.learn takes in this process over a ranked workload's feedback (dict
    state, no Kafka): the worker's own work. A fresh core over a copy of the ranked state, as
    the bench's phase-2 worker is a fresh process over its store (nothing of the ranking in
    memory). Learned in lists of `batch` split by partition, or with `group` in groups of
    `group` records of one partition each (`partition_groups`: as the worker learned them, its
    mean group size). `prepare(core)` runs before the timed learning; the collector is settled
    with `young_threshold` (the worker's unless given) and, with a `clock`, timed over the
    learning alone. `ranked.learned_first` is learned untimed by the same core first, in the same
    lists. RuntimeError unless every
    feedback record was learned (a rate of dead letters measures nothing the worker is for)."""
    core = _bench_core(ranked.config, dict(ranked.table))
    core.add_items(ranked.items)
    if prepare is not None:
        prepare(core)
    thresholds = gc.get_threshold()
    settle_collector(young_threshold)  # as the worker does once its partitions are assigned

    def lists(records: list[Record]) -> list[list[Record]]:
        return batch_groups(records, batch) if group is None else partition_groups(records, group)

    for records in lists(list(ranked.learned_first)):
        core.learn(records)
    feedback = ranked.feedback
    groups = lists(feedback)
    if clock is not None:
        clock.start()
    started, started_cpu = time.perf_counter(), time.thread_time()
    try:
        for records in groups:
            core.learn(records)
    finally:
        gc.set_threshold(*thresholds)  # the rest of the bench process as it was
        if clock is not None:
            clock.stop()
    spent = LearnTime(time.perf_counter() - started, time.thread_time() - started_cpu)
    counts = core.counts
    if counts.learned != len(ranked.learned_first) + len(feedback) or counts.dead_lettered:
        raise RuntimeError(f"in-process learning did not learn the workload: {counts}")
    return spent


def learned_before(ranked: RankedWorkload, count: int, batch: int = 2_000) -> RankedWorkload:
    """The workload once its first `count` feedback records are learned (in process, untimed, in
    lists of `batch` split by partition): the state they left and the rest of the feedback. A core
    over it (`in_process_learn`) is a restarted worker whose users' states, recent ids and offsets
    are stored (bench/worker_throughput.py --warm). RuntimeError unless all `count` were learned
    (`in_process_learn`, whose core's table is kept)."""
    cores: list[WorkerCore] = []
    in_process_learn(ranked._replace(feedback=ranked.feedback[:count]), batch, prepare=cores.append)
    table = cast(SharedTables, cores[0].tables).table
    return ranked._replace(table=dict(table), feedback=ranked.feedback[count:])


def steady_after(ranked: RankedWorkload, count: int) -> RankedWorkload:
    """The workload's feedback after its first `count` records, which a core learns untimed
    first (`learned_first`): a worker that learned them is still running, its users' states and
    recent ids in memory (bench/worker_throughput.py --steady)."""
    return ranked._replace(feedback=ranked.feedback[count:], learned_first=tuple(ranked.feedback[:count]))


def faust_floor(settings: StreamSettings, topics: list[str], expected: int, mode: str) -> dict[str, float]:
    """Run bench/faust_floor.py over the same records (a fresh consumer group); its JSON line."""
    command = [sys.executable, str(ROOT / "bench" / "faust_floor.py"), settings.broker_url, str(expected), *topics,
               "--partitions", str(settings.partitions)]
    if mode == "table":
        command.append("--table-writes")
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    # Faust routes stdout through its logger, so the JSON line may come on either stream
    lines = [line[line.index('{"records"'):] for line in (done.stdout + done.stderr).splitlines()
             if '{"records"' in line]
    if not lines:
        raise RuntimeError(f"faust_floor {mode} failed ({done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, float] = json.loads(lines[-1])
    return result


def quix_available() -> bool:
    """Whether bench/quix_peer.py can import quixstreams (from .data/quix-site); says why not."""
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "quix_peer.py"), "--check"], capture_output=True,
                          text=True, timeout=120, check=False)
    if done.returncode != 0:
        print(f"quix-streams peer SKIPPED: {(done.stdout + done.stderr).strip().splitlines()[-1]}")
    return done.returncode == 0


def quix_peer(settings: StreamSettings, topics: list[str], guarantee: str, state_parent: Path,
              gc_young_threshold: int | None = None) -> dict[str, float]:
    """Run bench/quix_peer.py over the same records (its own process, a fresh consumer group and
    state, made under `state_parent`; the collector's young threshold Python's own unless
    given); its JSON line."""
    command = [sys.executable, str(ROOT / "bench" / "quix_peer.py"), ",".join(settings.bootstrap_servers()),
               *topics, "--guarantee", guarantee]
    if gc_young_threshold is not None:
        command += ["--gc-young-threshold", str(gc_young_threshold)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False,
                          env={**os.environ, "TMPDIR": str(state_parent)})
    lines = [line for line in done.stdout.splitlines() if line.startswith('{"records"')]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"quix_peer {guarantee} failed ({done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, float] = json.loads(lines[-1])
    return result

