"""What a busy broker on the other CPU costs the worker's learning on this machine.

    OMP_NUM_THREADS=1 .venv/bin/python bench/broker_contention.py [--users 4700] [--requests 70000]
        [--rounds 2] [--record-bytes 2500] [--broker-dir DIR]

`WorkerCore.learn` in this process (`in_process_learn`, in groups of --group records of one
partition, as the worker learns them), pinned to the first CPU, timed in CPU seconds: once with
a broker started and idle, once while a producer sends it records of --record-bytes as fast as
it can (load of the kind a worker's changelog puts on it: writes of state-sized records), the
broker's JVM and the producer both pinned to the last CPU, so the learning's CPU is its own and
its CPU time counts no waiting.
Prints both rates per round, the loaded / idle ratio of each pair and its median, and the records
the broker took in each loaded stretch.

Why: bench/worker_throughput.py sets the worker's learning beside the same learning in process,
run after the broker stopped; on a 2-CPU VM whose CPUs share caches and memory bandwidth, the
busy broker beside the worker can cost its learning CPU time by itself (docs/worker.md, "Where
the window goes"). bench/worker_throughput.py runs the loaded half (`learn_beside_busy_broker`)
as one more baseline in every run, on its own broker before it stops.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from slatestream.hugepages import no_numpy_hugepages  # noqa: E402

no_numpy_hugepages()  # before numpy's import: the in-process baselines allocate as the worker does

from kafka import KafkaConsumer, TopicPartition  # noqa: E402
from kafka.admin import KafkaAdminClient, NewTopic  # noqa: E402

from bench.command_line import command_line  # noqa: E402
from bench.scale_support import load_broker  # noqa: E402
from bench.worker_baselines import LearnTime, RankedWorkload, in_process_learn, rank_in_process  # noqa: E402
from streams.testing import make_workload  # noqa: E402

LOAD_TOPIC = "contention.load"
LOAD_RECORD_BYTES = 2_500
"""The loading producer's record size, bytes (the default of both benches)."""
PRODUCER = """
import os, sys
from kafka import KafkaProducer
os.sched_setaffinity(0, {int(sys.argv[2])})
producer = KafkaProducer(bootstrap_servers=sys.argv[1], linger_ms=5, acks=1)
value, sent = os.urandom(int(sys.argv[3])), 0
while True:
    producer.send(sys.argv[4], key=str(sent % 5000).encode(), value=value)
    sent += 1
"""
"""A producer pinned to CPU argv[2], sending argv[3]-byte records to topic argv[4] until killed."""


def pin(pid: int, cpu: int) -> None:
    """Pin every thread of process `pid` to `cpu` (taskset -a: a JVM's threads are tasks)."""
    subprocess.run(["taskset", "-a", "-cp", str(cpu), str(pid)], check=True, capture_output=True)


def end_offset(bootstrap: str, topic: str) -> int:
    """The end offset of `topic`'s partition 0."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        return int(consumer.end_offsets([TopicPartition(topic, 0)])[TopicPartition(topic, 0)])
    finally:
        consumer.close()


def learn_beside_busy_broker(ranked: RankedWorkload, group: int, bootstrap: str, broker_pid: int,
                             record_bytes: int = LOAD_RECORD_BYTES) -> tuple[LearnTime, int]:
    """`in_process_learn(ranked, 2_000, group=group)` pinned to this process's first CPU while a
    producer sends the broker `record_bytes`-byte records as fast as it can, the broker's JVM and
    the producer pinned to the last CPU: (the learning's time, records the broker took meanwhile).
    Needs two CPUs (ValueError); this process's affinity is restored after (the broker's is left
    on its CPU). RuntimeError if the broker took nothing: a loaded run without load."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise ValueError("needs two CPUs: the learning on one, the broker and its producer on another")
    learner_cpu, broker_cpu = cpus[0], cpus[-1]
    pin(broker_pid, broker_cpu)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        if LOAD_TOPIC not in admin.list_topics():
            admin.create_topics([NewTopic(LOAD_TOPIC, 1, 1)])
    finally:
        admin.close()
    before = end_offset(bootstrap, LOAD_TOPIC)
    producer = subprocess.Popen([sys.executable, "-c", PRODUCER, bootstrap, str(broker_cpu), str(record_bytes),
                                 LOAD_TOPIC])
    os.sched_setaffinity(0, {learner_cpu})
    try:
        time.sleep(3)  # connected and sending
        spent = in_process_learn(ranked, 2_000, group=group)
    finally:
        producer.kill()
        producer.wait()
        os.sched_setaffinity(0, set(cpus))
    taken = end_offset(bootstrap, LOAD_TOPIC) - before
    if taken == 0:
        raise RuntimeError("the producer sent nothing: the loaded run had no load")
    return spent, taken


def ratios(idle: list[float], loaded: list[float]) -> tuple[list[float], float]:
    """(loaded / idle pair by pair, their median: the upper one of an even count)."""
    pairs = [after / before for before, after in zip(idle, loaded, strict=True)]
    return pairs, sorted(pairs)[len(pairs) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=4_700)
    parser.add_argument("--requests", type=int, default=70_000)
    parser.add_argument("--group", type=int, default=5_000, help="records of one partition a learn call")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--record-bytes", type=int, default=LOAD_RECORD_BYTES, help="the producer's record size")
    parser.add_argument("--broker-dir", type=Path, default=None, help="where the broker's log lives")
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        parser.error("needs two CPUs: the learning on one, the broker and its producer on another")
    learner_cpu, broker_cpu = cpus[0], cpus[-1]
    workload = make_workload(n_users=args.users, n_items=200, n_requests=args.requests, shown=5, click_rate=0.5,
                             seed=0)
    events = len(workload.feedback())
    ranked = rank_in_process(workload, 4)
    rates: dict[str, list[float]] = {"idle": [], "loaded": []}
    taken: list[int] = []
    with (tempfile.TemporaryDirectory(dir=args.broker_dir) as tmp,
          load_broker().KafkaBroker(data_dir=Path(tmp) / "broker") as broker):
        pin(broker.pid, broker_cpu)
        for _ in range(args.rounds):
            os.sched_setaffinity(0, {learner_cpu})
            rates["idle"].append(events / in_process_learn(ranked, 2_000, group=args.group).cpu_s)
            os.sched_setaffinity(0, set(cpus))  # learn_beside_busy_broker pins it again
            loaded, took = learn_beside_busy_broker(ranked, args.group, broker.bootstrap, broker.pid,
                                                    args.record_bytes)
            rates["loaded"].append(events / loaded.cpu_s)
            taken.append(took)
    pairs, median = ratios(rates["idle"], rates["loaded"])
    print(f"WorkerCore.learn in process on CPU {learner_cpu}, {events:,} events of {args.users:,} users, groups of "
          f"{args.group:,}; the broker (and its producer) on CPU {broker_cpu}")
    print("broker idle: " + ", ".join(f"{rate:,.0f}" for rate in rates["idle"]) + " events per CPU second")
    print("broker taking a producer's load: " + ", ".join(f"{rate:,.0f}" for rate in rates["loaded"])
          + f" events per CPU second (it took {', '.join(f'{n:,}' for n in taken)} records of "
          f"{args.record_bytes:,} bytes, each stretch including the producer's 3 s start)")
    print("loaded / idle, pair by pair: " + ", ".join(f"{ratio:.2f}" for ratio in pairs) + f" (median {median:.2f})")
    print(command_line("bench/broker_contention.py"))


if __name__ == "__main__":
    main()
