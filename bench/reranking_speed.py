"""Cost of slate re-ranking (MMR / DPP) over every Monte Carlo draw, and of Engine.rank with it.

    python bench/reranking_speed.py [--candidates 1000] [--dim 32] [--draws 64] [--k 10] [--repeats 300]

Part 1, the re-ranking step alone on float64[m, n] draws: utilities (standardised scores
plus an item adjustment) and greedy MMR / DPP over a shortlist of 5k per draw and over
all n candidates, against the plain top-k the slate builder does without objectives
(baseline, same process). Part 2, Engine.rank end to end (linear TS, in-memory state,
users with history) with the recommended objectives (MMR diversity on a 5k shortlist,
novelty, fairness, reasons) against Engine.rank without objectives. p50 / p99 and ratios.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np

from online.catalog import Catalog
from online.engine import Engine, EngineConfig
from online.events import Click, Impression, Item, RankRequest, ShownItem
from online.objectives import Objectives, ObjectiveSettings
from online.objectives.rerank import rerank, utilities
from online.policies.linear_ts import LinearThompsonSampling
from online.slates import top_k
from online.state import InMemoryStore


def timed(call: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(p50, p99) in milliseconds of `repeats` calls."""
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    values = np.asarray(samples) * 1e3
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def step_costs(args: argparse.Namespace, rng: np.random.Generator) -> None:
    n, m, k = args.candidates, args.draws, args.k
    vectors = rng.standard_normal((n, args.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    draws = rng.standard_normal((m, n))
    adjustment = rng.random(n) * 0.3
    base = timed(lambda: top_k(draws, k), args.repeats)
    print(f"re-ranking step, {n} candidates, d={args.dim}, {m} draws, k={k}, {args.repeats} repeats")
    print(f"  baseline plain top-k per draw: p50 {base[0]:.3f} ms, p99 {base[1]:.3f} ms")
    for method in ("mmr", "ild", "dpp"):
        for shortlist, label in ((5 * k, f"shortlist {5 * k}"), (0, f"all {n}")):
            p50, p99 = timed(
                lambda method=method, shortlist=shortlist: rerank(
                    utilities(draws, 1.0, adjustment), vectors, k, 0.5, method, shortlist  # type: ignore[arg-type]
                ),
                max(args.repeats // (10 if shortlist == 0 else 1), 20),
            )
            print(f"  {method.upper()} ({label}): p50 {p50:.3f} ms, p99 {p99:.3f} ms, "
                  f"ratio p50 vs baseline {p50 / base[0]:.1f}x")


def engine_costs(args: argparse.Namespace, rng: np.random.Generator) -> None:
    n_items, n_users = 5 * args.candidates, 200
    vectors = rng.standard_normal((n_items, args.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    items = [Item(item_id=f"i{i}", fields={"t": str(i)}, provider=f"p{i % 50}") for i in range(n_items)]
    now = datetime(2026, 1, 1, tzinfo=UTC)
    history: list[Impression | Click] = []
    for n in range(n_users * 5):
        user, shown = f"u{n % n_users}", rng.choice(n_items, 10, replace=False)
        history.append(Impression(event_id=f"e{n}", request_id=f"w{n}", user_id=user, time=now,
                                  shown=tuple(ShownItem(item_id=f"i{i}", position=p) for p, i in enumerate(shown))))
        history.append(Click(event_id=f"c{n}", request_id=f"w{n}", user_id=user, item_id=f"i{shown[0]}", time=now))
    requests = [
        RankRequest(request_id=f"r{n}", user_id=f"u{n % n_users}", k=args.k, time=now,
                    candidates=tuple(f"i{i}" for i in rng.choice(n_items, args.candidates, replace=False)))
        for n in range(args.repeats)
    ]
    settings = {
        "none": None,
        "MMR 0.5 + novelty + fairness": ObjectiveSettings(diversity=0.5, novelty=0.3, fairness=0.5,
                                                          fairness_group="provider"),
        "DPP 0.5": ObjectiveSettings(diversity=0.5, diversity_method="dpp"),
    }
    results: dict[str, tuple[float, float]] = {}
    for label, objective in settings.items():
        engine = Engine(LinearThompsonSampling(), InMemoryStore(), Catalog(dim=args.dim), np.random.default_rng(1),
                        config=EngineConfig(n_draws=args.draws),
                        objectives=None if objective is None else Objectives(objective))
        engine.add_items(items, vectors)
        engine.observe(history)
        queue = iter(requests * 2)
        engine.rank(next(queue))  # warm-up
        results[label] = timed(lambda engine=engine, queue=queue: engine.rank(next(queue)), args.repeats)
    print(f"Engine.rank, linear TS, {args.candidates} candidates, {args.draws} draws, k={args.k}, in-memory state")
    base = results["none"]
    for label, (p50, p99) in results.items():
        print(f"  objectives {label}: p50 {p50:.2f} ms, p99 {p99:.2f} ms, ratio p99 vs none {p99 / base[1]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--candidates", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--draws", type=int, default=64)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    step_costs(args, rng)
    engine_costs(args, rng)


if __name__ == "__main__":
    main()
