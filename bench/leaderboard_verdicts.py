"""What the live leaderboard calls, on the simulator: a served policy, shadows beside it, the
default window (2,000 rounds after a warm-up), through `LiveWindow` and `standings` as the worker
runs them; per seed and shadow the old board's word (an estimate called reliable, or not) and the
verdict on its difference from the served policy (`online.evaluation.versus`).

    OMP_NUM_THREADS=1 taskset -c 0 .venv/bin/python bench/leaderboard_verdicts.py --served uniform_random \\
        --shadows same=uniform_random,beta=bernoulli_ts,linear=linear_ts --seeds 0,1,2 --world small
    ... --served bernoulli_ts --shadows same=bernoulli_ts,linear=linear_ts,uniform=uniform_random --world full
    ... --served linear_ts --shadows same=linear_ts --seeds $(seq -s, 0 39)   # an identical shadow over 40 seeds

world small: 300 items, 100 users, 20 candidates, k = 5; full: the simulator's default (2,400 items,
100 candidates, k = 10). Every engine learns all feedback; hashing encoder, d = 16.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from encoders.hashing import HashingEncoder
from online.config import LeaderboardConfig
from online.evaluation.assessment import ReliabilityRule
from online.evaluation.live import Standings, standings
from online.simulation import SimulatorConfig
from online.simulation.shadow_window import shadow_window_rounds

ENCODER = HashingEncoder(dim=16)


def board(served: str, shadows: dict[str, str], seed: int, world_name: str, warm_up: int) -> Standings:
    """The standings after `warm_up` + window_rounds requests (see the module doc)."""
    settings = LeaderboardConfig(close_after_s=0.0)
    horizon = warm_up + settings.window_rounds
    world = (SimulatorConfig(n_items=300, n_users=100, n_candidates=20, k=5, seed=seed, horizon=horizon)
             if world_name == "small" else SimulatorConfig(seed=seed, horizon=horizon))
    rounds = shadow_window_rounds(served, shadows, world, ENCODER.encode, 16, settings)
    return standings(rounds, list(shadows), {}, n_bootstrap=settings.n_bootstrap, seed=seed,
                     rule=ReliabilityRule(precision=settings.precision), min_difference=settings.min_difference)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--served", default="uniform_random")
    parser.add_argument("--shadows", default="same=uniform_random,beta=bernoulli_ts,linear=linear_ts")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--world", choices=("small", "full"), default="small")
    parser.add_argument("--warm-up", type=int, default=300)
    args = parser.parse_args()
    shadows = dict(pair.split("=", 1) for pair in args.shadows.split(","))
    tally: Counter[tuple[str, str]] = Counter()
    shares: dict[str, list[float]] = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        found = board(args.served, shadows, seed, args.world, args.warm_up)
        assert found.on_policy is not None
        print(f"seed {seed}: served {args.served}, on-policy CTR {found.on_policy.value:.4f}")
        for standing in found.shadows:
            versus = standing.versus
            if versus is None:
                continue
            d, (share, low, high) = versus.difference, versus.relative
            old = "reliable" if standing.read else "unreliable"
            tally[(standing.name, versus.verdict)] += 1
            tally[(standing.name, "interval holds 0")] += d.covers(0.0)
            shares.setdefault(standing.name, []).append(share)
            tally[(standing.name, f"old board: {old}")] += 1
            print(f"  {standing.name:<8} {versus.verdict:<10} {d.value:+.4f} [{d.ci_low:+.4f}, {d.ci_high:+.4f}] "
                  f"({share:+.0%} [{low:+.0%}, {high:+.0%}]); old board: {old}; {versus.reason}")
    for (name, what), count in sorted(tally.items()):
        print(f"{name}: {what} x{count}")
    for name, found in sorted(shares.items()):
        print(f"{name}: mean difference {np.mean(found):+.2%} of the served value over {len(found)} seeds")


if __name__ == "__main__":
    main()
