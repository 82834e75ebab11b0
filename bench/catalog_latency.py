"""A new item's time to be searchable on the OTHER worker: published to the items topic, embedded by
the worker owning its partition, written to the catalog topic, followed by every worker.

    .venv/bin/python bench/catalog_latency.py [--items 20] [--catalog 200] [--encoder bert] [--poll-ms 50]

Starts its own broker and two real workers (`python -m slatestream worker`, BERT on ONNX Runtime
by default, the projection settled ahead as `slatestream projection fit` would) on one consumer
group; a catalog of --catalog simulator items is loaded first. Then, one at a time, each new
item (a real simulator text) is published to `<prefix>items` and, from that moment, a rank
request naming only that item is sent every --poll-ms for a user whose partition belongs to the
worker that does NOT own the item's partition: the worker that ranks it knows the item only
through the catalog topic. Searchable = the arrival of the first slate containing the item
(until then the answers are SlateErrors: no candidate in the catalog); it includes one request
round trip and up to one poll interval. Baseline, same items and moments: the item's record in
`<prefix>catalog` (its CreateTime, stamped by the owner when it handed the embedded item to its
producer): the owner's take, embedding and write. Printed: p50/p99/max of both, their ratio,
how many items met the goal (under 2 s), and a known item's rank round trip on each worker.
Which worker embedded each item is read from the workers' `slatestream_items_embedded` (the
owner's rises) and checked against the partition assignment, which must not change meanwhile.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kafka import KafkaProducer  # noqa: E402

from bench.command_line import command_line  # noqa: E402
from bench.latency_support import make_producer  # noqa: E402
from bench.scale_support import (  # noqa: E402
    AnswerReader,
    assigned_partitions,
    catalog_records,
    free_port,
    load_broker,
    metric_value,
    percentiles,
    settle_projection,
    simulator_items,
    worker_metrics,
    write_config,
)
from encoders.embedding import item_texts, open_encoder  # noqa: E402
from online.events import Item, RankRequest, Slate, encode_event  # noqa: E402
from streams.client import event_key  # noqa: E402
from streams.control import ensure_control_topic  # noqa: E402
from streams.settings import StreamSettings  # noqa: E402
from streams.testing import WorkerProcess, publish  # noqa: E402
from streams.topics import TopicNames, ensure_topics, partition_of  # noqa: E402

DIM = 32
GOAL_S = 2.0


class Worker:
    """One worker process with its metrics port and a user whose requests it ranks."""

    def __init__(self, name: str, settings: StreamSettings, tmp: Path, args: tuple[str, ...]) -> None:
        self.name = name
        self.port = free_port()
        self.process = WorkerProcess(settings, tmp / f"store-{name}", tmp / f"{name}.log", args, metrics_port=self.port)
        self.user = ""

    def partitions(self) -> set[int]:
        return assigned_partitions(self.process.log_text())

    def metric(self, name: str) -> float:
        return metric_value(worker_metrics(self.port), name)


def wait_until(condition, timeout_s: float, what: str, poll_s: float = 0.2) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(poll_s)


def request(producer: KafkaProducer, names: TopicNames, request_id: str, user: str, item_id: str) -> float:
    """Send a rank request naming only `item_id`; returns when it was sent (epoch s)."""
    event = RankRequest(request_id=request_id, user_id=user, candidates=(item_id,), k=1)
    producer.send(names.requests, key=event_key(event), value=encode_event(event))
    producer.flush()
    return time.time()


def searchable_after(producer: KafkaProducer, reader: AnswerReader, names: TopicNames, tag: str, user: str,
                     item: Item, poll_s: float, timeout_s: float) -> tuple[float, float]:
    """Publish `item`, then ask for it every poll_s for `user`; returns (published at, arrival of
    the first slate holding it), epoch s."""
    producer.send(names.items, key=event_key(item), value=encode_event(item))
    producer.flush()
    published = time.time()
    sent: list[str] = []
    next_send, deadline = time.monotonic(), time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if time.monotonic() >= next_send:
            sent.append(f"{tag}-{len(sent)}")
            request(producer, names, sent[-1], user, item.item_id)
            next_send += poll_s
        with reader.cond:
            reader.cond.wait(max(0.0, next_send - time.monotonic()))
            answers = [reader.answers[rid] for rid in sent if rid in reader.answers]
        hits = [answer.at_s for answer in answers if isinstance(answer.answer, Slate)
                and any(entry.item_id == item.item_id for entry in answer.answer.items)]
        if hits:
            return published, min(hits)
    raise TimeoutError(f"{item.item_id} not in a slate of {user} within {timeout_s:g} s")


def round_trips(producer: KafkaProducer, reader: AnswerReader, names: TopicNames, worker: Worker, item_id: str,
                count: int = 20) -> list[float]:
    """Seconds from send to answer of `count` requests (one at a time) for a known item."""
    out = []
    for n in range(count):
        request_id = f"rt{worker.name}-{n}"
        sent = request(producer, names, request_id, worker.user, item_id)
        answer = reader.wait(request_id, 30)
        if not isinstance(answer.answer, Slate):
            raise RuntimeError(f"{request_id} for a known item was refused: {answer.answer}")
        out.append(answer.at_s - sent)
    return out


def start_workers(settings: StreamSettings, tmp: Path, args: argparse.Namespace) -> list[Worker]:
    """Two workers, ready, sharing the partitions, each with a user of its own partitions."""
    config = write_config(tmp / "config.toml", device=args.device, dim=DIM)
    worker_args = ("--config", str(config), "--encoder", args.encoder, "--dim", str(DIM))
    workers = [Worker(name, settings, tmp, worker_args) for name in ("a", "b")]
    for worker in workers:
        worker.process.start()
    for worker in workers:
        worker.process.wait_ready(timeout_s=600)
    every = set(range(settings.partitions))

    def shared() -> bool:
        a, b = (worker.partitions() for worker in workers)
        return bool(a) and bool(b) and a | b == every and not a & b

    wait_until(shared, 120, "both workers to own partitions")
    for worker in workers:
        mine = worker.partitions()
        worker.user = next(user for user in (f"user-{n}" for n in range(10_000))
                           if partition_of(user, settings.partitions) in mine)
    return workers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20, help="new items timed")
    parser.add_argument("--catalog", type=int, default=200, help="items loaded before the timing")
    parser.add_argument("--encoder", choices=["bert", "hashing"], default="bert")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--poll-ms", type=float, default=50.0)
    parser.add_argument("--timeout-s", type=float, default=60.0)
    args = parser.parse_args()
    if args.items < 1 or args.catalog < 2:
        parser.error("--items >= 1, --catalog >= 2")
    items = simulator_items(args.catalog + args.items)
    catalog, new = items[: args.catalog], items[args.catalog :]
    with load_broker().KafkaBroker() as broker, tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        settings = StreamSettings(broker_url=broker.url, topic_prefix="catlat.", partitions=4,
                                  broker_session_timeout_s=6.0)
        names = TopicNames.from_settings(settings)
        ensure_topics(settings)
        ensure_control_topic(settings)
        encoder = open_encoder(args.encoder, device=args.device)
        settle_projection(settings, encoder, encoder.encode(item_texts(catalog)), DIM)
        publish(settings, catalog)
        workers = start_workers(settings, tmp, args)
        try:
            wait_until(lambda: all(w.metric("slatestream_catalog_items") >= args.catalog for w in workers), 600,
                       "both workers to load the catalog")
            before = [w.partitions() for w in workers]
            reader = AnswerReader(settings)
            producer = make_producer(settings)
            samples: list[tuple[Item, float, float, str]] = []  # item, published, searchable, owner
            for n, item in enumerate(new):
                item_partition = partition_of(item.item_id, settings.partitions)
                owner = next(w for w in workers if item_partition in w.partitions())
                other = next(w for w in workers if w is not owner)
                embedded = owner.metric("slatestream_items_embedded_total")
                published, found = searchable_after(producer, reader, names, f"c{n}", other.user, item,
                                                    args.poll_ms / 1e3, args.timeout_s)
                wait_until(lambda o=owner, e=embedded: o.metric("slatestream_items_embedded_total") > e, 30,
                           f"{owner.name} to count {item.item_id} as embedded")
                samples.append((item, published, found, owner.name))
                time.sleep(0.3)
            trips = {w.name: round_trips(producer, reader, names, w, new[0].item_id) for w in workers}
            if [w.partitions() for w in workers] != before:
                raise RuntimeError("the partition assignment changed during the timing: rerun")
            reader.close()
            producer.close()
        finally:
            for worker in workers:
                worker.process.stop()
        written = {record.item_id: record.created_s for record in catalog_records(settings)}
    report(samples, written, trips, args)


def report(samples: list[tuple[Item, float, float, str]], written: dict[str, float],
           trips: dict[str, list[float]], args: argparse.Namespace) -> None:
    searchable = [found - published for _, published, found, _ in samples]
    in_topic = [written[item.item_id] - published for item, published, _, _ in samples]
    s50, s99, smax = percentiles(searchable, (50, 99, 100))
    w50, w99, wmax = percentiles(in_topic, (50, 99, 100))
    owners = "".join(owner for *_, owner in samples)
    print(f"{len(samples)} new items, {args.encoder} encoder, 2 workers, catalog of {args.catalog}, a request every "
          f"{args.poll_ms:g} ms (embedded by: {owners})")
    print(f"  searchable on the other worker (first slate holding it): p50 {s50 * 1e3:.0f} ms, p99 {s99 * 1e3:.0f} ms, "
          f"max {smax * 1e3:.0f} ms; under {GOAL_S:g} s: {sum(s < GOAL_S for s in searchable)} of {len(samples)}")
    print(f"  baseline, in the catalog topic (owner's take + embed + write): p50 {w50 * 1e3:.0f} ms, "
          f"p99 {w99 * 1e3:.0f} ms, max {wmax * 1e3:.0f} ms")
    print(f"  ratio searchable / in the catalog topic: p50 {s50 / w50:.1f}x, p99 {s99 / w99:.1f}x")
    for name, seconds in trips.items():
        t50, t99 = percentiles(seconds)
        print(f"  a known item's rank round trip on worker {name}: p50 {t50 * 1e3:.0f} ms, p99 {t99 * 1e3:.0f} ms")
    print(command_line("bench/catalog_latency.py"))


if __name__ == "__main__":
    main()
