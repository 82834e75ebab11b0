"""What the support mix costs in clicks: linear TS on the simulator with `engine.support_epsilon`
(the probability that a served slate is a uniformly random ranking of its candidates) at 0 and
at the values asked, on paired seeds (the same users, items and request stream per seed).

    OMP_NUM_THREADS=1 .venv/bin/python bench/support_cost.py [--seeds 6] [--requests 2000] \\
        [--epsilons 0,0.02,0.05,0.1] [--encoder hashing|auto]

Prints per epsilon: CTR (clicks per shown item) mean over seeds, the paired difference against
epsilon = 0 with a 95% t-interval over seeds, and the ratio of mean CTRs. The uniform baseline
(`uniform_random` on the same seeds) bounds the cost: epsilon x (CTR(0) - CTR(random)) / CTR(0)
is what mixing in random slates costs if the policy learned nothing from them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from scipy import stats

from encoders.embedding import ItemEmbedding, open_encoder
from online.engine import EngineConfig
from online.experiment import ExperimentConfig, run_policy
from online.policies import make_policy
from online.simulation import Simulator, SimulatorConfig
from online.state import InMemoryStore


def interval(values: np.ndarray) -> tuple[float, float]:
    """(mean, half-width of the 95% t-interval) over seeds."""
    if values.size < 2:
        return float(values.mean()), float("nan")
    return float(values.mean()), float(stats.t.ppf(0.975, values.size - 1) * values.std(ddof=1) / np.sqrt(values.size))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--epsilons", default="0,0.02,0.05,0.1")
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--encoder", choices=["auto", "onnx", "hashing"], default="hashing")
    args = parser.parse_args()
    epsilons = [float(e) for e in args.epsilons.split(",")]
    if epsilons[0] != 0.0:
        epsilons.insert(0, 0.0)
    encoder = open_encoder(args.encoder)  # type: ignore[arg-type]
    ctr = {e: np.zeros(args.seeds) for e in [*epsilons, "random"]}
    started = time.perf_counter()
    for seed in range(args.seeds):
        config = SimulatorConfig(horizon=args.requests, seed=seed)
        embed = ItemEmbedding.fitted(encoder, args.dim, Simulator(config).initial_items(), seed)
        for key in ctr:
            name, epsilon = ("uniform_random", 0.0) if key == "random" else ("linear_ts", float(key))
            experiment = ExperimentConfig(n_requests=args.requests, engine=EngineConfig(support_epsilon=epsilon))
            run = run_policy(make_policy(name), Simulator(config), embed, InMemoryStore(), embed.dim, experiment,
                             np.random.default_rng([seed, 0]))
            ctr[key][seed] = run.summary()["ctr"]
            print(f"seed {seed} {name} epsilon {epsilon:g}: CTR {ctr[key][seed]:.4f}", flush=True)
    print(f"\nlinear TS, {args.seeds} paired seeds x {args.requests} requests, encoder {encoder.name}, d={args.dim} "
          f"({time.perf_counter() - started:.0f} s)")
    base = ctr[0.0]
    print(f"{'epsilon':>8} {'CTR':>8} {'minus epsilon 0 [95%]':>26} {'ratio':>7} {'bound':>7}")
    for epsilon in epsilons:
        mean, _ = interval(ctr[epsilon])
        diff, half = interval(ctr[epsilon] - base)
        bound = 1 - epsilon * (base.mean() - ctr["random"].mean()) / base.mean()
        print(f"{epsilon:>8g} {mean:>8.4f} {diff:>+12.4f} [{diff - half:+.4f}, {diff + half:+.4f}] "
              f"{mean / base.mean():>7.3f} {bound:>7.3f}")
    print(f"{'random':>8} {ctr['random'].mean():>8.4f}")


if __name__ == "__main__":
    main()
