"""Hybrid linear TS against linear TS in worlds where item quality is, or is not, in the text.

    OMP_NUM_THREADS=1 .venv/bin/python bench/hybrid_quality.py [--seeds 6] [--requests 3000]
        [--worlds none,default,hidden,named] [--policies linear_ts,hybrid_ts[,hybrid_ts_fixed]] [--json PATH]

Worlds (the simulator's `TasteConfig`; quality is a logit offset per item shared by all users):
- none: quality_scale 0, everything that makes an item relevant is in its text;
- default: the simulator's default, quality_scale 0.3, in no text;
- hidden: quality_scale 1.0, in no text (items of the same kind of text differ in how good they are);
- named: quality_scale 1.0, and every description names its quality quintile
  (`catalog.QUALITY_PHRASES`), so the text carries most of it.
Every policy runs closed-loop on simulators of the same seeds per world (paired: same users,
catalog, requests; the policy's generator seeded by (seed, 0) for each, so the first policy's
figures match `bench/policies_simulator.py` where the seeds agree), hashing encoder projected
to d = 32 as the demo. Printed per world: CTR and regret (expected clicks behind the oracle
slate, exact) per policy, and each policy minus the first, paired by seed, with 95%
t-intervals. Goal (issue 22): hybrid TS's regret below linear TS's in "hidden", and no loss
(no regret increase beyond its interval) in "none" and "named".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from scipy import stats

from encoders.embedding import ItemEmbedding
from encoders.hashing import HashingEncoder
from online.experiment import ExperimentConfig, run_policy
from online.policies import make_policy
from online.policies.base import Policy
from online.policies.hybrid_ts import HybridThompsonSampling, HybridTSParams
from online.simulation import Simulator, SimulatorConfig, TasteConfig
from online.state import InMemoryStore

WORLDS: dict[str, TasteConfig] = {
    "none": TasteConfig(quality_scale=0.0),
    "default": TasteConfig(),
    "hidden": TasteConfig(quality_scale=1.0),
    "named": TasteConfig(quality_scale=1.0, quality_in_text=True),
}
FIGURES = ("ctr", "regret", "new_item_ctr")
VARIANTS: dict[str, Callable[[], Policy[Any, Any]]] = {
    "hybrid_ts_fixed": lambda: HybridThompsonSampling(HybridTSParams(estimate_item_prior=False)),
}
"""Policies by bench name beside the registered ones: hybrid_ts_fixed keeps its item prior fixed
(hybrid_ts estimates it from its item sums, the default)."""


def interval(values: list[float]) -> tuple[float, float]:
    """(mean, half-width of the 95% t-interval); half-width nan for one value."""
    array = np.asarray(values, dtype=np.float64)
    if len(array) < 2:
        return float(array.mean()), float("nan")
    return float(array.mean()), float(stats.t.ppf(0.975, len(array) - 1) * array.std(ddof=1) / np.sqrt(len(array)))


def run_world(taste: TasteConfig, policies: list[str], seeds: range, requests: int,
              dim: int) -> dict[str, dict[str, list[float]]]:
    """{policy: {figure: per-seed values}} for one world."""
    encoder = HashingEncoder(dim=256)
    out: dict[str, dict[str, list[float]]] = {name: {f: [] for f in FIGURES} for name in policies}
    for seed in seeds:
        config = replace(SimulatorConfig(horizon=requests, seed=seed), taste=taste)
        embed = ItemEmbedding.fitted(encoder, dim, Simulator(config).initial_items(), seed)
        for name in policies:
            policy = VARIANTS[name]() if name in VARIANTS else make_policy(name)
            run = run_policy(policy, Simulator(config), embed, InMemoryStore(), dim,
                             ExperimentConfig(n_requests=requests), np.random.default_rng([seed, 0]))
            summary = run.summary()
            for figure in FIGURES:
                out[name][figure].append(summary[figure])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--worlds", default=",".join(WORLDS))
    parser.add_argument("--policies", default="linear_ts,hybrid_ts")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    policies, worlds = args.policies.split(","), args.worlds.split(",")
    unknown = [w for w in worlds if w not in WORLDS]
    if unknown:
        parser.error(f"--worlds: unknown {unknown}; known: {list(WORLDS)}")
    started = time.perf_counter()
    results = {}
    for world in worlds:
        figures = run_world(WORLDS[world], policies, range(args.seeds), args.requests, args.dim)
        results[world] = figures
        print(f"\nworld {world} ({WORLDS[world]}), {args.seeds} seeds x {args.requests} requests "
              f"({time.perf_counter() - started:.0f} s)")
        for name in policies:
            cells = "  ".join(f"{f} {m:.4f} ±{h:.4f}" if f != "regret" else f"{f} {m:.1f} ±{h:.1f}"
                              for f, (m, h) in ((f, interval(figures[name][f])) for f in FIGURES))
            print(f"  {name:12s} {cells}")
        base = policies[0]
        for name in policies[1:]:
            cells = []
            for figure in FIGURES:
                diffs = np.subtract(figures[name][figure], figures[base][figure]).tolist()
                mean, half = interval(diffs)
                relative = 100 * mean / np.mean(figures[base][figure])
                cells.append(f"{figure} {mean:+.4f} ±{half:.4f} ({relative:+.1f}%)")
            print(f"  {name} minus {base}, paired: " + "   ".join(cells), flush=True)
    print(f"\n(all runs: {time.perf_counter() - started:.0f} s, a shared machine)")
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "worlds": results}, indent=2))


if __name__ == "__main__":
    main()
