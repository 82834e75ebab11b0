"""The worker's Prometheus metrics (prometheus-client, its own registry).

Observed as records flow (histograms and counters the paths update):
- `slatestream_rank_seconds{scenario}`: one request's ranking (decode, rank, its state write);
- `slatestream_learn_batch_seconds`: one partition's share of a feedback list;
- `slatestream_slate_items_total{scenario,policy,explored}`: items served, explored or not.
Read from the worker at each scrape (a collector):
- `slatestream_records_total{topic,outcome}`, `slatestream_dead_letters_total{reason}`;
- `slatestream_consumer_lag{topic,partition}` (records fetched by Kafka's high watermark and not
  yet taken by a lane), `slatestream_seconds_since_commit` (the feedback lane's last group commit);
- `slatestream_state_keys` (RocksDB's estimate over the open partitions), `slatestream_catalog_items`,
  `slatestream_items_embedded_total`;
- `slatestream_live_ctr{scenario,policy}` (clicks per exposure learned since start) and
  `slatestream_exploration_share{scenario,policy}` (share of served items that were explored);
- `slatestream_execution_provider_info{provider}` (where the item encoder runs), `slatestream_ready`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from online.events import Slate

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass
class WorkerState:
    """What the collector reads at a scrape: callables over the running worker (kept small so
    that the collector is testable with plain values)."""

    counts: Callable[[], Any]
    lag: Callable[[], dict[tuple[str, int], int]] = dict
    last_commit_at: Callable[[], float | None] = lambda: None
    state_keys: Callable[[], int] = lambda: 0
    catalog_items: Callable[[], int] = lambda: 0
    live: Callable[[], dict[tuple[str, str], tuple[float, float]]] = dict
    provider: str = "cpu"
    ready: Callable[[], bool] = lambda: False
    started_at: float = field(default_factory=time.time)


class WorkerMetrics:
    """The worker's metrics in a registry of their own (`registry`, served by streams.worker.service)."""

    def __init__(self, state: WorkerState, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.rank_seconds = Histogram("slatestream_rank_seconds", "Seconds to rank one request", ["scenario"],
                                      buckets=LATENCY_BUCKETS, registry=self.registry)
        self.learn_batch_seconds = Histogram("slatestream_learn_batch_seconds",
                                             "Seconds to learn one partition's share of a feedback list",
                                             buckets=LATENCY_BUCKETS, registry=self.registry)
        self.slate_items = Counter("slatestream_slate_items", "Items served, by scenario, policy and exploration",
                                   ["scenario", "policy", "explored"], registry=self.registry)
        self.state = state
        self.registry.register(_WorkerCollector(state, self.slate_items))

    def observe_slate(self, slate: Slate, seconds: float) -> None:
        """A ranked request: its latency and its items."""
        self.rank_seconds.labels(slate.scenario).observe(seconds)
        explored = sum(item.explored for item in slate.items)
        if explored:
            self.slate_items.labels(slate.scenario, slate.policy, "true").inc(explored)
        if len(slate.items) - explored:
            self.slate_items.labels(slate.scenario, slate.policy, "false").inc(len(slate.items) - explored)


class _WorkerCollector(Collector):
    def __init__(self, state: WorkerState, slate_items: Counter) -> None:
        self.state = state
        self.slate_items = slate_items

    def collect(self) -> Iterator[Metric]:
        counts = self.state.counts()
        yield _records(counts)
        reasons = CounterMetricFamily("slatestream_dead_letters", "Records dead-lettered, by reason", labels=["reason"])
        for reason, count in sorted(counts.by_reason.items()):
            reasons.add_metric([reason], count)
        yield reasons
        lag = GaugeMetricFamily("slatestream_consumer_lag", "Records behind the high watermark",
                                labels=["topic", "partition"])
        for (topic, partition), behind in sorted(self.state.lag().items()):
            lag.add_metric([topic, str(partition)], behind)
        yield lag
        last = self.state.last_commit_at()
        since = time.time() - (last if last is not None else self.state.started_at)
        yield GaugeMetricFamily("slatestream_seconds_since_commit", "Seconds since the feedback lane's last commit",
                                value=since)
        yield GaugeMetricFamily("slatestream_state_keys", "State keys in the open partitions (RocksDB estimate)",
                                value=self.state.state_keys())
        yield GaugeMetricFamily("slatestream_catalog_items", "Items in the catalog", value=self.state.catalog_items())
        yield CounterMetricFamily("slatestream_items_embedded", "Items embedded by this worker", value=counts.items)
        yield from self._rates()
        info = GaugeMetricFamily("slatestream_execution_provider_info", "Where the item encoder runs",
                                 labels=["provider"])
        info.add_metric([self.state.provider], 1)
        yield info
        yield GaugeMetricFamily("slatestream_ready", "1 when the worker serves (see /readyz)",
                                value=1.0 if self.state.ready() else 0.0)

    def _rates(self) -> Iterator[Metric]:
        ctr = GaugeMetricFamily("slatestream_live_ctr", "Clicks per exposure learned since start",
                                labels=["scenario", "policy"])
        for (scenario, policy), (exposures, clicks) in sorted(self.state.live().items()):
            if exposures > 0:
                ctr.add_metric([scenario, policy], clicks / exposures)
        yield ctr
        served: dict[tuple[str, str], list[float]] = {}
        for metric in self.slate_items.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    labels = sample.labels
                    slot = served.setdefault((labels["scenario"], labels["policy"]), [0.0, 0.0])
                    slot[labels["explored"] == "true"] += sample.value
        share = GaugeMetricFamily("slatestream_exploration_share", "Share of served items that were explored",
                                  labels=["scenario", "policy"])
        for (scenario, policy), (plain, explored) in sorted(served.items()):
            if plain + explored > 0:
                share.add_metric([scenario, policy], explored / (plain + explored))
        yield share


def _records(counts: Any) -> Metric:
    family = CounterMetricFamily("slatestream_records", "Records consumed, by topic role and outcome",
                                 labels=["topic", "outcome"])
    for (topic, outcome), count in sorted(counts.by_topic.items()):
        family.add_metric([topic, outcome], count)
    return family
