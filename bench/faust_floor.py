"""Faust's own ceiling on this machine: a take_events agent that does (almost) nothing.

    python bench/faust_floor.py BROKER_URL EXPECTED TOPIC [TOPIC ...] [--table-writes]

Runs in its own process (bench/worker_throughput.py starts it) as a fresh consumer group
over the given topics, with the worker's Faust app (streams.worker.app: same consumer and
producer settings). It takes records in batches like the worker's feedback agent and
either only counts them, or (--table-writes) also writes one 4,800-byte value per record
to a changelogged RocksDB table under the record's key, in the record's partition: the
least a worker that keeps per-user state in a Faust table must do. Prints one JSON line
{"records": n, "seconds": s, "per_s": r, "mean_batch": b}, from the first batch to the
last record, then exits.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import faust  # noqa: E402

from streams.settings import StreamSettings  # noqa: E402
from streams.worker.app import make_app  # noqa: E402
from streams.worker.faust_private import partition_context  # noqa: E402

VALUE = b"s" * 4800
"""About the size of a linear TS user state at d = 32 (4,776 bytes plus the offsets header)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("broker_url")
    parser.add_argument("expected", type=int)
    parser.add_argument("topics", nargs="+")
    parser.add_argument("--table-writes", action="store_true")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--batch-wait-s", type=float, default=0.05)
    args = parser.parse_args()
    settings = StreamSettings(broker_url=args.broker_url, app_id=f"floor-{uuid.uuid4().hex[:8]}",
                              topic_prefix="", partitions=args.partitions, broker_session_timeout_s=6.0,
                              store_dir=Path(tempfile.mkdtemp(prefix="faust-floor-")))
    app = make_app(settings)
    topic = app.topic(*args.topics, key_type=bytes, value_type=bytes, key_serializer="raw",
                      value_serializer="raw", partitions=args.partitions)
    table = app.Table("floor", partitions=args.partitions, key_type=bytes, value_type=bytes)
    seen = {"records": 0, "batches": 0, "start": 0.0}

    @app.agent(topic)
    async def floor(stream: faust.StreamT) -> None:
        async for events in stream.take_events(args.batch_size, within=args.batch_wait_s):
            if not seen["batches"]:
                seen["start"] = time.perf_counter()
            seen["batches"] += 1
            seen["records"] += len(events)
            if args.table_writes:
                for event in events:
                    with partition_context(event):
                        table[event.key or b""] = VALUE
            if seen["records"] >= args.expected:
                seconds = time.perf_counter() - seen["start"]
                print(json.dumps({"records": seen["records"], "seconds": seconds,
                                  "per_s": seen["records"] / seconds,
                                  "mean_batch": seen["records"] / seen["batches"]}), flush=True)
                os._exit(0)  # the figure is out; no need for a graceful Faust shutdown

    worker = faust.Worker(app, loglevel="warning", quiet=True)
    worker.spinner = None  # as the worker does (streams.worker.topology.run_worker): no DEBUG root logger
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
