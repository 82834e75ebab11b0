"""The river CTR policy on the simulator: its hyperparameters, its CTR against Bernoulli TS, its cost.

    OMP_NUM_THREADS=1 .venv/bin/python bench/river_ctr.py [--tune] [--seeds 6] [--requests 3000]
        [--cost-requests 4000] [--cost-repeats 3]

--tune: CTR of river_ctr over a grid of SGD learning rates x L2 weights (`--learning-rates`,
`--l2`) on tuning seeds 100.. (`--tune-seeds`, disjoint from the comparison's seeds 0..), mean
over those seeds; pick the best and set it as the default in RiverCTRParams.

Comparison (always): river_ctr (defaults), bernoulli_ts and linear_ts closed-loop on simulators
of seeds 0..seeds-1 (paired: same users, catalog, requests; each policy's generator seeded by
(seed, 0)), hashing encoder projected to d = 32 as the demo. Printed: each policy's CTR (mean, 95%
t-interval over seeds) and river's CTR over Bernoulli TS's per seed (mean ratio and 95%
t-interval of the per-seed ratios; goal issue 22: >= 1.3).

Cost: seconds per request (rank + learning, learning every 20 requests) over the first and the
last thousand of `--cost-requests` requests of seed 0, river and, in the same process,
Bernoulli TS as the baseline; the median of `--cost-repeats` runs. Goal: river's last thousand
within 20% of its first.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from scipy import stats

from encoders.embedding import ItemEmbedding
from encoders.hashing import HashingEncoder
from online.experiment import Embed, ExperimentConfig, run_policy
from online.policies import make_policy
from online.policies.base import Policy
from online.policies.river_ctr import RiverCTR, RiverCTRParams
from online.simulation import Simulator, SimulatorConfig
from online.state import InMemoryStore

ENCODER = HashingEncoder(dim=256)
DIM = 32


def interval(values: list[float]) -> tuple[float, float]:
    """(mean, half-width of the 95% t-interval) of per-seed values."""
    array = np.asarray(values, dtype=np.float64)
    if len(array) < 2:
        return float(array.mean()), float("nan")
    return float(array.mean()), float(stats.t.ppf(0.975, len(array) - 1) * array.std(ddof=1) / np.sqrt(len(array)))


def world(seed: int, requests: int) -> tuple[SimulatorConfig, Embed]:
    config = SimulatorConfig(horizon=requests, seed=seed)
    return config, ItemEmbedding.fitted(ENCODER, DIM, Simulator(config).initial_items(), seed)


def ctr(policy: Policy[object, object], seed: int, requests: int) -> float:
    config, embed = world(seed, requests)
    run = run_policy(policy, Simulator(config), embed, InMemoryStore(), DIM, ExperimentConfig(n_requests=requests),
                     np.random.default_rng([seed, 0]))
    return float(run.summary()["ctr"])


def tune(args: argparse.Namespace) -> None:
    seeds = range(args.tune_seeds, args.tune_seeds + 3)
    print(f"tuning on seeds {list(seeds)} x {args.requests} requests (CTR, mean over seeds)")
    rates = [float(v) for v in args.learning_rates.split(",")]
    weights = [float(v) for v in args.l2.split(",")]
    print("learning rate \\ l2 " + " ".join(f"{w:>9g}" for w in weights))
    for rate in rates:
        row = [np.mean([ctr(RiverCTR(RiverCTRParams(learning_rate=rate, l2=w)), s, args.requests) for s in seeds])
               for w in weights]
        print(f"{rate:>18g} " + " ".join(f"{value:9.4f}" for value in row), flush=True)


def compare(args: argparse.Namespace) -> None:
    names = ("river_ctr", "bernoulli_ts", "linear_ts")
    figures: dict[str, list[float]] = {name: [] for name in names}
    for seed in range(args.seeds):
        for name in names:
            figures[name].append(ctr(make_policy(name), seed, args.requests))
        print(f"  seed {seed}: " + "  ".join(f"{n} {figures[n][-1]:.4f}" for n in names), flush=True)
    print(f"\n{args.seeds} seeds x {args.requests} requests, paired by seed")
    for name in names:
        mean, half = interval(figures[name])
        print(f"  {name:13s} CTR {mean:.4f} ±{half:.4f}")
    ratios = np.divide(figures["river_ctr"], figures["bernoulli_ts"]).tolist()
    mean, half = interval(ratios)
    print(f"  river_ctr / bernoulli_ts per seed: {mean:.2f}x [{mean - half:.2f}, {mean + half:.2f}] "
          f"(goal >= 1.3x: {'met' if mean >= 1.3 else 'NOT met'} on the mean)")
    mean, half = interval(np.divide(figures["river_ctr"], figures["linear_ts"]).tolist())
    print(f"  river_ctr / linear_ts per seed: {mean:.2f}x [{mean - half:.2f}, {mean + half:.2f}]")


def window_costs(name: str, requests: int) -> tuple[float, float]:
    """(ms per request over the first thousand, over the last thousand) of one run of seed 0."""
    config, embed = world(0, requests)
    stamps: dict[int, float] = {}
    started = time.perf_counter()

    def progress(step: int) -> None:
        stamps[step] = time.perf_counter() - started

    run_policy(make_policy(name), Simulator(config), embed, InMemoryStore(), DIM, ExperimentConfig(n_requests=requests),
               np.random.default_rng([0, 0]), progress)
    last = requests - 1000
    return stamps[1000], stamps[requests] - stamps[last]


def cost(args: argparse.Namespace) -> None:
    print(f"\ncost per request, seed 0, {args.cost_requests} requests, learning every 20, median of "
          f"{args.cost_repeats} (shared machine)")
    for name in ("river_ctr", "bernoulli_ts"):
        runs = [window_costs(name, args.cost_requests) for _ in range(args.cost_repeats)]
        first, last = np.median([r[0] for r in runs]), np.median([r[1] for r in runs])
        print(f"  {name:13s} first thousand {first:.2f} s ({first:.2f} ms/request), last thousand {last:.2f} s "
              f"({last:.2f} ms/request): last / first {last / first:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tune", action="store_true")
    parser.add_argument("--tune-seeds", type=int, default=100, help="first of the 3 tuning seeds")
    parser.add_argument("--learning-rates", default="0.001,0.003,0.01,0.03,0.1")
    parser.add_argument("--l2", default="0,1e-5,1e-4,1e-3")
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--cost-requests", type=int, default=4000)
    parser.add_argument("--cost-repeats", type=int, default=3)
    parser.add_argument("--no-compare", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    if args.tune:
        tune(args)
    if not args.no_compare:
        compare(args)
        cost(args)
    print(f"(all: {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
