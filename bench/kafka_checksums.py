"""What kafka-python's record checksums cost the project's readers: native (the `crc32c` package,
a dependency through `kafka-python[crc32c]`) against kafka-python's pure-Python fallback, on a
real broker, in the same run.

    .venv/bin/python bench/kafka_checksums.py [--requests 40000] [--runs 3]

Starts its own broker, publishes a seeded workload (requests, impressions, clicks: records of
~0.2-0.4 KB, streams.testing.make_workload) and then, alternating, in fresh processes:
  - `slatestream replay` over the whole stretch (the command users run to evaluate a stretch of
    the topics): as installed, and with `crc32c` made unimportable (`sys.modules["crc32c"] =
    None` before the command's main, what an environment without the package gets);
  - a bare kafka-python consumer reading the same records (poll only): native, pure Python, and
    with `check_crcs=False` (the floor: no checksum at all).
Prints each one's median wall and CPU seconds over --runs, MB/s, and the ratios pure Python /
native. streams.checksums says why: kafka-python checksums every batch it reads and writes.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.scale_support import load_broker  # noqa: E402
from streams.settings import StreamSettings  # noqa: E402
from streams.testing import make_workload, publish  # noqa: E402
from streams.topics import TopicNames, ensure_topics  # noqa: E402

BLOCK_CRC32C = "import sys; sys.modules['crc32c'] = None\n"
"""Prepended to a child's code: `crc32c` unimportable, so kafka-python takes its Python fallback."""

REPLAY = "from slatestream.cli import main\nmain()\n"

BARE_READER = """
import sys
from kafka import KafkaConsumer, TopicPartition
bootstrap, check, topics = sys.argv[1], sys.argv[2] == "check", sys.argv[3].split(",")
consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, check_crcs=check)
partitions = [TopicPartition(topic, p) for topic in topics for p in consumer.partitions_for_topic(topic)]
consumer.assign(partitions)
consumer.seek_to_beginning(*partitions)
total = sum(consumer.end_offsets(partitions).values())
records = size = 0
while records < total:
    for batch in consumer.poll(timeout_ms=1000, max_records=100_000).values():
        records += len(batch)
        size += sum(len(record.value) for record in batch)
consumer.close()
print(records, size)
"""


def run_child(code: str, args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall s, CPU s, stdout) of `python -c code args` in a fresh process; raises on failure."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=900, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"child failed ({done.returncode}): {done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=40_000, help="workload requests (each brings an "
                        "impression, half a click)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each way, alternating; medians printed")
    args = parser.parse_args()
    workload = make_workload(n_users=2000, n_items=200, n_requests=args.requests, shown=5, seed=0)
    broker_module = load_broker()
    with (tempfile.TemporaryDirectory() as tmp, broker_module.KafkaBroker(data_dir=Path(tmp) / "broker") as broker):
        settings = StreamSettings(broker_url=broker.url, topic_prefix="bench.", partitions=4)
        names = TopicNames.from_settings(settings)
        ensure_topics(settings)
        since = datetime.now(UTC) - timedelta(minutes=1)
        count = publish(settings, [*workload.requests, *workload.feedback()])
        until = datetime.now(UTC) + timedelta(minutes=1)
        env = {**os.environ, "SLATESTREAM_BROKER_URL": broker.url, "SLATESTREAM_TOPIC_PREFIX": "bench.",
               "OMP_NUM_THREADS": "1"}
        out = Path(tmp) / "replayed.jsonl"
        replay_args = ["replay", "--since", since.isoformat(), "--until", until.isoformat(), "--out", str(out),
                       "--topics", "requests,impressions,clicks"]
        reader_args = [broker.bootstrap, "check", ",".join((names.requests, names.impressions, names.clicks))]
        ways = {
            "replay, native": (REPLAY, replay_args),
            "replay, pure Python": (BLOCK_CRC32C + REPLAY, replay_args),
            "bare reader, native": (BARE_READER, reader_args),
            "bare reader, pure Python": (BLOCK_CRC32C + BARE_READER, reader_args),
            "bare reader, no checksum": (BARE_READER, [*reader_args[:1], "off", *reader_args[2:]]),
        }
        times: dict[str, list[tuple[float, float]]] = {way: [] for way in ways}
        size = 0
        for _ in range(args.runs):
            for way, (code, child_args) in ways.items():
                wall, cpu, stdout = run_child(code, child_args, env)
                times[way].append((wall, cpu))
                if way.startswith("bare") and stdout.split():
                    read, size = map(int, stdout.split())
                    if read != count:
                        raise RuntimeError(f"{way}: read {read:,} records of {count:,}")
        report(times, count, size, args)


def report(times: dict[str, list[tuple[float, float]]], count: int, size: int, args: argparse.Namespace) -> None:
    """Medians per way, MB/s of the bare reads, and the pure-Python / native ratios."""
    print(f"{count:,} records, {size / 1e6:.1f} MB of values, {args.runs} runs of each way (medians; "
          f"wall includes each process's start and imports)")
    medians = {way: (statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))
               for way, runs in times.items()}
    for way, (wall, cpu) in medians.items():
        rate = f"  {size / 1e6 / wall:6.1f} MB/s" if way.startswith("bare") else ""
        print(f"  {way:26s} wall {wall:6.2f} s  CPU {cpu:6.2f} s{rate}")
    for what in ("replay", "bare reader"):
        native, pure = medians[f"{what}, native"], medians[f"{what}, pure Python"]
        print(f"ratio pure Python / native, {what}: wall {pure[0] / native[0]:.2f}x, CPU {pure[1] / native[1]:.2f}x")
    floor = medians["bare reader, no checksum"]
    print(f"native / no checksum, bare reader: wall {medians['bare reader, native'][0] / floor[0]:.2f}x")


if __name__ == "__main__":
    main()
