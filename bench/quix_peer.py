"""The worker's peer: a quix-streams application that keeps a per-user counter in RocksDB state.

    .venv/bin/python bench/quix_peer.py HOST:PORT TOPIC [TOPIC ...] [--guarantee exactly-once]
        [--gc-young-threshold N]
    .venv/bin/python bench/quix_peer.py --install     # quixstreams 3.28.1 into .data/quix-site
    .venv/bin/python bench/quix_peer.py --check       # exit 0 when quixstreams imports

Runs in its own process (bench/worker_throughput.py starts it after the worker, over the same
impression and click records on the same broker). A quix-streams 3.28.1 Application with its
defaults (RocksDB state, 5 s commit interval) and a fresh consumer group reads every given
topic from the beginning: one StreamingDataFrame per topic, JSON values, and a stateful step
that adds one to the record's user (its key) in the state. It reads the topics' end offsets
before it starts and stops once it has processed the last record of every partition; the
final checkpoint commit (state flushed, offsets committed; under exactly-once the
transaction) then runs. Prints one JSON line {"records": n, "seconds": s, "per_s": r,
"processed_s": p, "commits": c, "guarantee": g}: `seconds` from the first record handed to the
counting step to the end of the last checkpoint commit (both wall clock, like the worker's
window: first list taken to last group commit), `processed_s` to the last record processed.

quixstreams is not a project dependency (pyproject's `bench` extra names it): its pins
(pydantic < 2.14, pydantic-settings < 2.16) conflict with requirements.lock, so it is
installed with the packages pip resolves for it into .data/quix-site, never into the venv,
and only this process puts that folder first on sys.path.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(os.environ.get("QUIX_SITE", ROOT / ".data" / "quix-site"))
"""Where quixstreams is installed for this bench (QUIX_SITE overrides)."""
QUIXSTREAMS = "quixstreams==3.28.1"
INSTALL_COMMAND = ".venv/bin/python bench/quix_peer.py --install"


def install() -> int:
    """pip-install quixstreams and what pip resolves for it into SITE (not the venv); exit status."""
    command = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--upgrade",
               "--target", str(SITE), QUIXSTREAMS]
    print("$", " ".join(command))
    return subprocess.run(command, check=False).returncode


class CommitClock(logging.Handler):
    """Wall-clock time (unix s) at which quix-streams logged its last finished checkpoint commit."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.last_commit_at = 0.0
        self.commits = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("Committed a checkpoint"):
            self.last_commit_at = record.created
            self.commits += 1


def end_offsets(broker_url: str, topics: list[str]) -> dict[tuple[str, int], int]:
    """{(topic, partition): offset of its last record} for every non-empty partition of `topics`."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": broker_url,
                         "group.id": f"quix-peer-probe-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False})
    try:
        last: dict[tuple[str, int], int] = {}
        for topic in topics:
            metadata = consumer.list_topics(topic, timeout=30).topics[topic]
            for partition in metadata.partitions:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
                if high > 0:
                    last[topic, partition] = high - 1
        return last
    finally:
        consumer.close()


def run_peer(broker_url: str, topics: list[str], guarantee: str) -> dict[str, Any]:
    """Count every record of `topics` per user in a quix-streams app; the figures main prints."""
    from quixstreams import Application, State

    clock = CommitClock()
    commit_logger = logging.getLogger("quixstreams.processing.context")
    commit_logger.setLevel(logging.DEBUG)
    commit_logger.propagate = False
    commit_logger.addHandler(clock)
    seen = {"records": 0, "first_at": 0.0, "processed_at": 0.0}
    pending: dict[tuple[str, int], int] = {}

    def on_processed(topic: str, partition: int, offset: int) -> None:
        if pending.get((topic, partition), -1) == offset:  # the partition's last record
            del pending[topic, partition]
            if not pending:
                seen["processed_at"] = time.time()
                app.stop()

    def count(value: dict[str, Any], state: State) -> int:
        if not seen["records"]:
            seen["first_at"] = time.time()
        seen["records"] += 1
        n: int = state.get("n", 0) + 1
        state.set("n", n)
        return n

    with tempfile.TemporaryDirectory(prefix="quix-peer-") as state_dir:
        app = Application(broker_address=broker_url, consumer_group=f"quix-peer-{uuid.uuid4().hex[:8]}",
                          auto_offset_reset="earliest", processing_guarantee=guarantee,  # type: ignore[arg-type]
                          state_dir=state_dir, loglevel="WARNING", on_message_processed=on_processed)
        commit_logger.setLevel(logging.DEBUG)  # Application configures the quixstreams loggers
        pending.update(end_offsets(broker_url, topics))
        for name in topics:
            app.dataframe(app.topic(name, key_deserializer="str", value_deserializer="json")).apply(
                count, stateful=True)
        app.run()
    if pending:
        raise RuntimeError(f"the peer stopped before the last record of {sorted(pending)}")
    if clock.last_commit_at < seen["processed_at"]:
        raise RuntimeError("quix-streams logged no checkpoint commit after the last record (its log line changed?)")
    return {"records": seen["records"], "seconds": clock.last_commit_at - seen["first_at"],
            "per_s": seen["records"] / (clock.last_commit_at - seen["first_at"]),
            "processed_s": seen["processed_at"] - seen["first_at"], "commits": clock.commits,
            "guarantee": guarantee}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("broker_url", nargs="?", help="bootstrap servers, host:port[,host:port]")
    parser.add_argument("topics", nargs="*")
    parser.add_argument("--guarantee", choices=("at-least-once", "exactly-once"), default="at-least-once")
    parser.add_argument("--install", action="store_true", help=f"install {QUIXSTREAMS} into {SITE} and exit")
    parser.add_argument("--check", action="store_true", help="exit 0 when quixstreams imports, else 3")
    parser.add_argument("--gc-young-threshold", type=int, default=None, metavar="N",
                        help="the cyclic collector's young-generation threshold, as the worker's option of that "
                             "name sets it (default: Python's, 700)")
    args = parser.parse_args()
    if args.gc_young_threshold is not None:
        _, middle, oldest = gc.get_threshold()
        gc.set_threshold(args.gc_young_threshold, middle, oldest)
    if args.install:
        sys.exit(install())
    sys.path.insert(0, str(SITE))
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")  # authlib, via confluent-kafka
    try:
        import quixstreams
    except ImportError as error:
        print(f"quixstreams is not importable ({error!r}); install it with: {INSTALL_COMMAND}")
        sys.exit(3)
    if args.check:
        print(f"quixstreams {quixstreams.__version__} from {Path(quixstreams.__file__).parent.parent}")
        return
    if not args.broker_url or not args.topics:
        parser.error("BROKER_URL and at least one TOPIC are needed")
    print(json.dumps(run_peer(args.broker_url, args.topics, args.guarantee)), flush=True)


if __name__ == "__main__":
    main()
