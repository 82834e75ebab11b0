"""Rank latency: one request with 1,000 candidates at d = 32, linear TS, p50/p99.

    python bench/rank_latency.py [--candidates 1000] [--dim 32] [--draws 64] [--requests 2000]

Engine.rank end to end (user state from rocksdict, posterior, n_draws Thompson draws,
top-k per draw, Monte Carlo propensities, Slate object). Two floors in the same process,
interleaved request by request: the bare floor of any ranker, one numpy matmul of the
candidates with a vector plus a top-k (no posterior, no propensities, no state); and the
floor of any m-draw Thompson ranker, the same with m draws as one [m, d + 1] float32 matrix
product (the engine's precision) and a top-k per row (no posterior, no propensities, no slate; the draws are a learned
user's, drawn once). Prints all three and the engine's ratio to each, in wall time and in
this thread's CPU time (the latter is what other processes on a shared core do not
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
from online.features import ItemFeatures
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
    timings = time_interleaved(engine, requests, rng, args.dim, args.draws)
    print(f"rank latency, linear TS, {args.candidates} candidates, d={args.dim}, {args.draws} draws, "
          f"{args.requests} requests, rocksdict state")
    for clock in ("wall", "CPU"):
        p50, p99 = percentiles(timings["engine", clock])
        print(f"  {clock} time: engine.rank p50 {p50:.3f} ms, p99 {p99:.3f} ms")
        for floor, label in (("one", "one-vector floor (id lookup + matmul + top-k)"),
                             ("draws", f"{args.draws}-draw floor (id lookup + one {args.draws}-row matmul + top-k "
                                       "per row)")):
            f50, f99 = percentiles(timings[floor, clock])
            print(f"    {label}: p50 {f50:.3f} ms, p99 {f99:.3f} ms; engine / floor p50 {p50 / f50:.1f}x, "
                  f"p99 {p99 / f99:.1f}x")
    one = percentiles(timings["one", "CPU"])
    draws = percentiles(timings["draws", "CPU"])
    print(f"  CPU time: the {args.draws}-draw floor alone is {draws[0] / one[0]:.1f}x (p50) / {draws[1] / one[1]:.1f}x "
          f"(p99) the one-vector floor")


def time_interleaved(engine: Engine, requests: list[RankRequest], rng: np.random.Generator, dim: int,
                     n_draws: int) -> dict[tuple[str, str], list[float]]:
    """Per request, in turn: Engine.rank; the one-vector floor (candidate rows looked up and
    gathered, one float32 matmul with a vector, top-k); the n_draws floor (the same with an
    [n_draws, dim + 1] float32 matrix of draws against the features with their bias column, as
    linear TS scores them, top-k per row). Interleaved so that other processes' load falls on
    all three alike. {(name, "wall" | "CPU"): seconds}."""
    theta = rng.standard_normal(dim).astype(np.float32)
    thetas = posterior_draws(engine, requests[0].user_id, rng, n_draws)
    vectors = engine.catalog.vectors
    steps = {
        "engine": lambda request: engine.rank(request),
        "one": lambda request: top_k((vectors.take(engine.catalog.rows(request.candidates or ()), axis=0)
                                      @ theta)[None, :], request.k),
        "draws": lambda request: top_k(thetas @ with_bias(vectors.take(
            engine.catalog.rows(request.candidates or ()), axis=0)).T, request.k),
    }
    timings: dict[tuple[str, str], list[float]] = {(name, clock): [] for name in steps for clock in ("wall", "CPU")}
    for request in requests:
        for name, step in steps.items():
            started, cpu_started = time.perf_counter(), time.thread_time()
            step(request)
            timings[name, "wall"].append(time.perf_counter() - started)
            timings[name, "CPU"].append(time.thread_time() - cpu_started)
    return timings


def posterior_draws(engine: Engine, user_id: str, rng: np.random.Generator, n_draws: int) -> np.ndarray:
    """float32[n_draws, d + 1] Thompson draws from one learned user's posterior, mean + exploration
    * L^-T z, drawn once: the floor scores with draws as alike as the engine's (top-k's shortlist
    works as well on them) but pays nothing to draw them."""
    policy = engine.policy
    assert isinstance(policy, LinearThompsonSampling)
    mean, factor = policy.posterior(engine.global_state, engine.load_user(user_id))
    noise = rng.standard_normal((mean.shape[0], n_draws))
    thetas: np.ndarray = (mean[:, None] + policy.params.exploration * np.linalg.solve(factor.T, noise)).T
    return np.ascontiguousarray(thetas, dtype=np.float32)


def with_bias(vectors: np.ndarray) -> np.ndarray:
    """float32[n, d + 1]: the vectors float32[n, d] with a constant 1 column, as linear TS scores them
    (the engine's own feature map, in the policy's precision)."""
    return ItemFeatures().transform(vectors, None, np.float32)

if __name__ == "__main__":
    main()
