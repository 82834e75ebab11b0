"""Building blocks of the at-scale worker benchmarks (bench/worker_embedding.py,
bench/catalog_latency.py): the project's own broker, real item texts, a worker configuration
file, the projection settled ahead, and what the catalog topic holds.

Times are wall-clock seconds (`time.time()`) so they compare with Kafka record timestamps
(CreateTime, epoch ms, stamped by the writing process when it calls send).
"""

from __future__ import annotations

import importlib.util
import re
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
from kafka import KafkaConsumer, TopicPartition

from encoders.base import Encoder
from encoders.projection import PcaProjection
from online.events import Item, Slate, SlateError, decode_slate_answer
from online.simulation import Simulator, SimulatorConfig
from streams.projection import PublishedProjection, agree_on_projection
from streams.settings import StreamSettings
from streams.state_changelog import topic_end_offsets
from streams.topics import TopicNames

ROOT = Path(__file__).resolve().parents[1]
FIT_SEED = 0


def load_broker() -> ModuleType:
    """deploy/kafka/broker.py (a real single-node Kafka broker), imported by path."""
    name = "slatestream_bench_broker"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "deploy" / "kafka" / "broker.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def simulator_items(count: int, seed: int = 0, prefix: str = "") -> list[Item]:
    """`count` items of the simulator's world (fashion titles and descriptions, attributes, brand
    as provider), ids prefixed with `prefix`."""
    simulator = Simulator(SimulatorConfig(n_items=count, initial_item_fraction=1.0, seed=seed))
    items = simulator.initial_items()
    if prefix:
        items = [item.model_copy(update={"item_id": prefix + item.item_id}) for item in items]
    return items


def write_config(path: Path, *, int8: bool = False, device: str = "auto", dim: int = 32) -> Path:
    """A configuration file (TOML) whose embedding is BERT with these settings."""
    path.write_text(f'[embedding]\nencoder = "bert"\nint8 = {str(int8).lower()}\ndevice = "{device}"\ndim = {dim}\n')
    return path


def settle_projection(settings: StreamSettings, encoder: Encoder, vectors: np.ndarray, dim: int,
                      fit_items: int = 2000) -> PublishedProjection:
    """Publish the projection of `encoder` to `dim`, fitted on the first `fit_items` rows of
    `vectors` (float32[n, D], the encoder's output), as `slatestream projection fit` does; a
    worker started after reads it instead of fitting one on its first items."""
    key = f"{encoder.fingerprint}/d{dim}"
    sample = vectors[:fit_items]
    return agree_on_projection(settings, key, lambda: (PcaProjection.fit(sample, dim, FIT_SEED), len(sample)))


@dataclass(frozen=True)
class CatalogRecord:
    """One record of the catalog topic: the item id and when its writer sent it (epoch s)."""

    item_id: str
    created_s: float


def catalog_count(settings: StreamSettings) -> int:
    """Records in the catalog topic (the sum of its end offsets)."""
    return sum(topic_end_offsets(settings, TopicNames.from_settings(settings).catalog).values())


def wait_catalog(settings: StreamSettings, count: int, timeout_s: float, poll_s: float = 0.05) -> float:
    """Block until the catalog topic holds `count` records; returns when that was seen (epoch s)."""
    deadline = time.monotonic() + timeout_s
    while catalog_count(settings) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the catalog topic holds {catalog_count(settings)} of {count} records "
                               f"after {timeout_s:g} s")
        time.sleep(poll_s)
    return time.time()


def catalog_records(settings: StreamSettings) -> list[CatalogRecord]:
    """Every record of the catalog topic, from its beginning to its end offsets now."""
    topic = TopicNames.from_settings(settings).catalog
    consumer = KafkaConsumer(**settings.kafka_client_config(), group_id=None, enable_auto_commit=False,
                             fetch_max_wait_ms=50, client_id="scale-bench-catalog")
    records: list[CatalogRecord] = []
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(CatalogRecord(record.key.decode(), record.timestamp / 1e3) for record in batch
                               if record.key is not None)
    finally:
        consumer.close(autocommit=False)
    return records


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a worker's metrics endpoint)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def worker_metrics(port: int, timeout_s: float = 5.0) -> str:
    """The Prometheus exposition a worker serves on 127.0.0.1:port/metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout_s) as answer:
        return str(answer.read().decode())


def execution_provider(metrics: str) -> str:
    """The provider of `slatestream_execution_provider_info` ("?" when absent)."""
    found = re.search(r'slatestream_execution_provider_info\{provider="([^"]+)"\}', metrics)
    return found[1] if found else "?"


def metric_value(metrics: str, name: str) -> float:
    """The value of an unlabelled sample `name` in a Prometheus exposition (KeyError when absent)."""
    found = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", metrics, re.MULTILINE)
    if found is None:
        raise KeyError(f"no sample {name} in the metrics")
    return float(found[1])


def assigned_partitions(log_text: str) -> set[int]:
    """The partitions a worker's last "assigned partitions [..]" log line names."""
    found = re.findall(r"assigned partitions \[([\d, ]*)\]", log_text)
    return set() if not found else {int(p) for p in found[-1].replace(" ", "").split(",") if p}


@dataclass(frozen=True)
class Answer:
    """A slates-topic record read by `AnswerReader`: when it arrived (epoch s) and what it says."""

    at_s: float
    answer: Slate | SlateError


class AnswerReader:
    """One kafka-python consumer over every partition of the slates topic (no group, from its end),
    polled by a thread that keeps the first answer to each request id, a Slate or a SlateError
    (bench.latency_support.SlateReader reads slates only)."""

    def __init__(self, settings: StreamSettings) -> None:
        self.answers: dict[str, Answer] = {}
        self.cond = threading.Condition()
        topic = TopicNames.from_settings(settings).slates
        self._consumer = KafkaConsumer(**settings.kafka_client_config(), group_id=None, enable_auto_commit=False,
                                       fetch_max_wait_ms=20, client_id="scale-bench-answers")
        tps = [TopicPartition(topic, p) for p in sorted(self._consumer.partitions_for_topic(topic) or ())]
        self._consumer.assign(tps)
        for tp, end in self._consumer.end_offsets(tps).items():
            self._consumer.seek(tp, end)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scale-bench-answers", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            batches = self._consumer.poll(timeout_ms=50)
            now = time.time()
            answers = [decode_slate_answer(record.value) for batch in batches.values() for record in batch
                       if record.value is not None]
            if answers:
                with self.cond:
                    for answer in answers:
                        self.answers.setdefault(answer.request_id, Answer(now, answer))
                    self.cond.notify_all()

    def wait(self, request_id: str, timeout_s: float) -> Answer:
        """The answer to request_id (TimeoutError after timeout_s)."""
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while request_id not in self.answers:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no answer to {request_id} within {timeout_s:g} s")
                self.cond.wait(remaining)
            return self.answers[request_id]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._consumer.close(autocommit=False)


def percentiles(values: Sequence[float], points: Sequence[float] = (50, 99)) -> list[float]:
    """np.percentile of values at points."""
    return [float(v) for v in np.percentile(np.asarray(values, dtype=np.float64), list(points))]
