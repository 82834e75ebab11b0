"""What persisting the objectives' memory costs: per-user recent items and window snapshots.

    python bench/objectives_persistence.py [--items 100000] [--events 20000] [--batch 2000] [--repeats 3]

Learns the same synthetic impressions + clicks (k = 10 shown, 2,000 users; bench/
engine_throughput.py's generator) with linear TS, state in memory, one core, three ways:
    baseline      objectives on (fairness), nothing persisted of them (windows_snapshot_s = 0
                  and the user blobs dropped: the pre-persistence behaviour)
    user blobs    each batch also writes its users' recent items (the default)
    + snapshots   and a window snapshot after every batch (windows_snapshot_s tiny; the default,
                  60 s of event time, takes one per minute of traffic)
Each runs --repeats times, interleaved, on a fresh engine; prints the best events/s of each
and its ratio to the baseline's best, then the size and the encode / load time of one
snapshot when every catalog item has exposures (the worst case). Last, the same comparison
for the worker's own work, `WorkerCore.learn` (decode, dedupe, learn; dict state, 4
partitions, batches of 2,000) over streams/testing.py's requests (ranked first) and feedback,
with a scenario configured with fairness and the shown-item filter.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_throughput import make_events

from online.catalog import Catalog
from online.engine import Engine
from online.events import Item
from online.objectives import Objectives, ObjectiveSettings
from online.objectives.memory import ObjectiveMemory
from online.objectives.window_codec import encode_windows, load_windows
from online.policies.linear_ts import LinearThompsonSampling
from online.state import InMemoryStore


def worker_core_rate(objectives: dict[str, Any], persist: bool, n_requests: int) -> float:
    """Events/s of WorkerCore.learn over a workload's feedback (bench/worker_baselines.py's
    in_process_learn, 4 partitions, batches of 2,000); with persist False the objectives write
    no user blob (and no snapshot: windows_snapshot_s 0)."""
    from worker_baselines import in_process_learn, rank_in_process

    from online.config import parse_config
    from streams.testing import make_workload
    from streams.worker.core import WorkerCore

    workload = make_workload(n_users=2_000, n_items=200, n_requests=n_requests, shown=5, click_rate=0.5, seed=0)
    settings = {**objectives, **({} if persist else {"windows_snapshot_s": 0})}
    config = parse_config({"scenarios": {"default": {"policy": {"name": "linear_ts"}, "objectives": settings,
                                                     "filters": {"exclude_shown_within_s": 3600}}}})

    def no_user_blobs(core: WorkerCore) -> None:
        for partition in range(4):
            objectives = core.engine(partition).objectives
            assert objectives is not None
            objectives.user_blob = lambda *_: None  # type: ignore[method-assign]

    spent = in_process_learn(rank_in_process(workload, 4, config), 2_000, None if persist else no_user_blobs)
    return len(workload.feedback()) / spent.seconds


class NoUserBlobs(Objectives):
    """The objectives as before per-user persistence: no blob to write."""

    def user_blob(self, user_id: str, catalog: Catalog) -> bytes | None:
        return None


def build(n_items: int, dim: int, objectives: Objectives) -> Engine:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((n_items, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    engine = Engine(LinearThompsonSampling(), InMemoryStore(), Catalog(dim=dim), rng, objectives=objectives)
    engine.add_items([Item(item_id=f"i{i}", fields={"title": f"item {i}"}) for i in range(n_items)], vectors)
    return engine


def events_per_s(engine: Engine, events: list, batch: int) -> float:  # type: ignore[type-arg]
    start = time.perf_counter()
    for first in range(0, len(events), batch):
        engine.observe(events[first : first + batch])
    return len(events) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker-requests", type=int, default=10_000, help="0: skip the WorkerCore section")
    args = parser.parse_args()
    events = make_events(args.events, 2_000, args.items, seed=1)
    settings = ObjectiveSettings(fairness=1.0, windows_snapshot_s=0.0)
    snapshots = settings.model_copy(update={"windows_snapshot_s": 1e-3})
    runs = {
        "baseline (nothing of the objectives persisted)": lambda: NoUserBlobs(settings),
        "user blobs (the default)": lambda: Objectives(settings),
        "user blobs + a window snapshot every batch": lambda: Objectives(snapshots),
    }
    print(f"{args.events} events in batches of {args.batch}, {args.items} items, best of {args.repeats}, "
          f"OMP threads {os.environ.get('OMP_NUM_THREADS', 'unset')}")
    best = dict.fromkeys(runs, 0.0)
    for _ in range(args.repeats):
        for label, make in runs.items():
            best[label] = max(best[label], events_per_s(build(args.items, args.dim, make()), events, args.batch))
    baseline = next(iter(best.values()))
    for label, rate in best.items():
        print(f"{label:48s} {rate:9.0f} events/s  {rate / baseline:5.2f}x")

    memory = ObjectiveMemory(settings)
    catalog = build(args.items, args.dim, Objectives(settings)).catalog
    rows = np.arange(args.items, dtype=np.int64)
    memory.item_exposure.add(rows, np.linspace(0.0, 86_000.0, args.items))
    start = time.perf_counter()
    head, chunks = encode_windows(memory, catalog, 86_000.0)
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    load_windows(ObjectiveMemory(settings), head, chunks, catalog)
    load_s = time.perf_counter() - start
    size = len(head) + sum(len(chunk) for chunk in chunks)
    print(f"snapshot of {args.items} items with exposures: {size / 1e6:.2f} MB in {len(chunks)} parts "
          f"(largest {max(len(c) for c in chunks) / 1e6:.2f} MB), encode {encode_s * 1e3:.0f} ms, "
          f"load {load_s * 1e3:.0f} ms")
    if args.worker_requests:
        objectives = {"fairness": 1.0}
        rates: dict[bool, float] = {False: 0.0, True: 0.0}
        for _ in range(args.repeats):
            for persist in (False, True):
                rates[persist] = max(rates[persist], worker_core_rate(objectives, persist, args.worker_requests))
        print(f"WorkerCore.learn, {args.worker_requests} requests' feedback, fairness + shown filter: "
              f"nothing persisted {rates[False]:,.0f} events/s, user blobs + snapshots every 60 s "
              f"{rates[True]:,.0f} events/s  {rates[True] / rates[False]:.2f}x")


if __name__ == "__main__":
    main()
