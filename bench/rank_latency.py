"""Rank latency: one request with 1,000 candidates at d = 32, linear TS, p50/p99.

    python bench/rank_latency.py [--candidates 1000] [--dim 32] [--draws 64] [--requests 2000]

Engine.rank end to end (user state from rocksdict, posterior, n_draws Thompson draws,
top-k per draw, Monte Carlo propensities, Slate object). Baseline in the same process:
the bare floor of any ranker, one numpy matmul of the candidates with a vector plus a
top-k (no posterior, no propensities, no state). Prints both and their ratio, in wall time
and in this thread's CPU time (the latter is what other processes on a shared core do not
inflate).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime

import numpy as np

from online.catalog import Catalog
from online.engine import Engine, EngineConfig
from online.events import Click, Impression, Item, RankRequest, ShownItem
from online.policies.linear_ts import LinearThompsonSampling
from online.slates import top_k
from slatestream.store import RocksDictStore


def percentiles(samples_s: list[float]) -> tuple[float, float]:
    values = np.asarray(samples_s) * 1e3
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--draws", type=int, default=64)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--users", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n_items = 5 * args.candidates
    vectors = rng.standard_normal((n_items, args.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    items = [Item(item_id=f"i{i}", fields={"title": f"item {i}"}) for i in range(n_items)]
    engine = Engine(LinearThompsonSampling(), RocksDictStore(tempfile.mkdtemp()), Catalog(dim=args.dim),
                    rng, config=EngineConfig(n_draws=args.draws))
    engine.add_items(items, vectors)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    warm: list[Impression | Click] = []
    for n in range(args.users * 5):  # give every user some history
        user = f"u{n % args.users}"
        shown = rng.choice(n_items, 10, replace=False)
        warm.append(Impression(event_id=f"e{n}", request_id=f"w{n}", user_id=user, time=now,
                               shown=tuple(ShownItem(item_id=f"i{i}", position=p) for p, i in enumerate(shown))))
        warm.append(Click(event_id=f"c{n}", request_id=f"w{n}", user_id=user, item_id=f"i{shown[0]}", time=now))
    engine.observe(warm)
    requests = []
    for n in range(args.requests):
        candidates = rng.choice(n_items, args.candidates, replace=False)
        requests.append(RankRequest(request_id=f"r{n}", user_id=f"u{n % args.users}", k=10, time=now,
                                    candidates=tuple(f"i{i}" for i in candidates)))
    engine_times: list[float] = []
    engine_cpu: list[float] = []
    for request in requests:
        started, cpu_started = time.perf_counter(), time.thread_time()
        engine.rank(request)
        engine_times.append(time.perf_counter() - started)
        engine_cpu.append(time.thread_time() - cpu_started)
    theta = rng.standard_normal(args.dim).astype(np.float32)
    floor_times: list[float] = []
    floor_cpu: list[float] = []
    for request in requests:
        started, cpu_started = time.perf_counter(), time.thread_time()
        rows = engine.catalog.rows(request.candidates or ())
        top_k((engine.catalog.vectors[rows] @ theta)[None, :].astype(np.float64), 10)
        floor_times.append(time.perf_counter() - started)
        floor_cpu.append(time.thread_time() - cpu_started)
    print(f"rank latency, linear TS, {args.candidates} candidates, d={args.dim}, {args.draws} draws, "
          f"{args.requests} requests, rocksdict state")
    for label, engine_s, floor_s in (("wall", engine_times, floor_times), ("CPU", engine_cpu, floor_cpu)):
        p50, p99 = percentiles(engine_s)
        f50, f99 = percentiles(floor_s)
        print(f"  {label} time: engine.rank p50 {p50:.3f} ms, p99 {p99:.3f} ms; baseline (id lookup + matmul "
              f"+ top-k only) p50 {f50:.3f} ms, p99 {f99:.3f} ms; ratio p99 engine/baseline {p99 / f99:.1f}x")


if __name__ == "__main__":
    main()
