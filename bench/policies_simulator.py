"""Policy quality on the simulator: CTR, regret and new-item CTR over several seeds.

    python bench/policies_simulator.py [--seeds 3] [--requests 3000] [--encoder hashing|onnx]

Every policy runs on simulators of the same seeds (same users, items and request
stream); the table gives mean and a 95% t-interval over seeds for each figure, and the
ratio of each policy's CTR against the uniform-random baseline run in the same process.
Goal: linear TS on text embeddings clearly ahead of Bernoulli TS, popularity and random
on CTR, regret and new-item CTR.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import stats

from encoders.embedding import ItemEmbedding, open_encoder
from online.experiment import ExperimentConfig, run_policy
from online.policies import POLICIES, make_policy
from online.simulation import Simulator, SimulatorConfig
from online.state import InMemoryStore

FIGURES = ("ctr", "regret", "new_item_ctr", "diversity")


def interval(values: list[float]) -> tuple[float, float]:
    """(mean, half-width of the 95% t-interval) over seeds."""
    array = np.asarray(values)
    if len(array) < 2:
        return float(array.mean()), float("nan")
    half = stats.t.ppf(0.975, len(array) - 1) * array.std(ddof=1) / np.sqrt(len(array))
    return float(array.mean()), float(half)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--encoder", choices=["bert", "hashing"], default="hashing")
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    names = args.policies.split(",")
    encoder = open_encoder(args.encoder)
    results: dict[str, dict[str, list[float]]] = {n: {f: [] for f in FIGURES} for n in names}
    for seed in range(args.seeds):
        simulator_config = SimulatorConfig(horizon=args.requests, seed=seed)
        embed = ItemEmbedding.fitted(encoder, args.dim, Simulator(simulator_config).initial_items(), seed)
        for index, name in enumerate(names):
            run = run_policy(make_policy(name), Simulator(simulator_config), embed, InMemoryStore(), args.dim,
                             ExperimentConfig(n_requests=args.requests), np.random.default_rng([seed, index]))
            summary = run.summary()
            for figure in FIGURES:
                results[name][figure].append(summary[figure])
            print(f"seed {seed} {name:15s} ctr {summary['ctr']:.4f} regret {summary['regret']:.1f} "
                  f"new-item ctr {summary['new_item_ctr']:.4f}", flush=True)
    baseline = np.mean(results["uniform_random"]["ctr"]) if "uniform_random" in results else float("nan")
    print(f"\n{args.seeds} seeds x {args.requests} requests, encoder {encoder.name}, d={args.dim}")
    print(f"{'policy':15s} " + " ".join(f"{f:>20s}" for f in FIGURES) + "   CTR / random")
    for name in names:
        cells = [interval(results[name][f]) for f in FIGURES]
        text = " ".join(f"{m:12.4f} ±{h:7.4f}" for m, h in cells)
        print(f"{name:15s} {text}   {np.mean(results[name]['ctr']) / baseline:.2f}x")
    if "linear_ts" in results:
        print("\npaired by seed (same users, items and requests): linear_ts minus each policy")
        for name in names:
            if name == "linear_ts":
                continue
            cells = []
            for figure in ("ctr", "regret", "new_item_ctr"):
                diffs = np.subtract(results["linear_ts"][figure], results[name][figure]).tolist()
                mean, half = interval(diffs)
                cells.append(f"{figure} {mean:+.4f} ±{half:.4f}")
            print(f"  vs {name:15s} " + "   ".join(cells))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
