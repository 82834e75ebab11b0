"""Events/s of the embedded engine learning impressions + clicks with linear TS.

    python bench/engine_throughput.py [--events 40000] [--batch 2000] [--dim 32]

Streams synthetic impressions (k=10 shown items each) and clicks for 2,000 users over a
2,000-item catalog through Engine.observe, in batches, on one core, state in rocksdict
(the embedded default) or memory. Baseline in the same process: the same events
observed one at a time (no batching). Prints events/s for both and their ratio.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta

import numpy as np

from online.catalog import Catalog
from online.engine import Engine, EngineConfig
from online.events import Click, Impression, Item, ShownItem
from online.policies.linear_ts import LinearThompsonSampling
from online.state import InMemoryStore, StateStore
from slatestream.heap import keep_freed_memory
from slatestream.store import RocksDictStore

USER_CACHE = 0


def make_events(n_events: int, n_users: int, n_items: int, seed: int) -> list[Impression | Click]:
    rng = np.random.default_rng(seed)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    events: list[Impression | Click] = []
    step = 0
    while len(events) < n_events:
        user = f"u{int(rng.integers(n_users))}"
        shown = rng.choice(n_items, size=10, replace=False)
        time_ = t0 + timedelta(milliseconds=step)
        events.append(Impression(
            event_id=f"e{step}", request_id=f"r{step}", user_id=user, time=time_,
            shown=tuple(ShownItem(item_id=f"i{i}", position=p, propensity=0.1) for p, i in enumerate(shown)),
        ))
        if rng.random() < 0.3:
            events.append(Click(event_id=f"c{step}", request_id=f"r{step}", user_id=user,
                                item_id=f"i{shown[0]}", time=time_))
        step += 1
    return events[:n_events]


def engine(store: StateStore, n_items: int, dim: int, seed: int) -> Engine:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n_items, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    items = [Item(item_id=f"i{i}", fields={"title": f"item {i}"}) for i in range(n_items)]
    made = Engine(LinearThompsonSampling(), store, Catalog(dim=dim), rng,
                  config=EngineConfig(user_cache_size=USER_CACHE))
    made.add_items(items, vectors)
    return made


def measure(events: list[Impression | Click], batch: int, store: StateStore, dim: int) -> tuple[float, float]:
    """(events per wall second, events per CPU second of this process: RocksDB's own threads
    included, other processes on a shared core not)."""
    target = engine(store, 2000, dim, seed=1)
    started, cpu_started = time.perf_counter(), time.process_time()
    for start in range(0, len(events), batch):
        target.observe(events[start : start + batch])
    return len(events) / (time.perf_counter() - started), len(events) / (time.process_time() - cpu_started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--baseline-events", type=int, default=4_000)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--store", choices=["rocksdict", "memory"], default="rocksdict")
    parser.add_argument("--user-cache", type=int, default=0, help="EngineConfig.user_cache_size")
    args = parser.parse_args()
    global USER_CACHE
    USER_CACHE = args.user_cache
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    heap = "on" if keep_freed_memory() else "off"  # as `slatestream run` (SLATESTREAM_HEAP_TUNING=off: off)
    events = make_events(args.events, args.users, 2000, seed=0)

    def store() -> StateStore:
        return InMemoryStore() if args.store == "memory" else RocksDictStore(tempfile.mkdtemp())

    batched, batched_cpu = measure(events, args.batch, store(), args.dim)
    single, single_cpu = measure(events[: args.baseline_events], 1, store(), args.dim)
    print(f"engine observe, linear TS, d={args.dim}, store={args.store}, "
          f"{args.users} users, user cache {args.user_cache}, heap tuning {heap}, impressions (10 items) + clicks")
    print(f"  batched ({args.batch}/batch): {batched:,.0f} events/s ({batched_cpu:,.0f} per CPU second)")
    print(f"  baseline one event per call: {single:,.0f} events/s ({single_cpu:,.0f} per CPU second)")
    print(f"  ratio batched/baseline: {batched / single:.1f}x")


if __name__ == "__main__":
    main()
