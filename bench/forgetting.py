"""Forgetting by event time before and after a preference shift, on the simulator.

    OMP_NUM_THREADS=1 .venv/bin/python bench/forgetting.py [--seeds 6] [--requests 6000] [--shift-at 3000]
        [--shift-share 1.0] [--half-lives none,600,1800] [--drift none] [--json PATH]

Hybrid TS (online/policies/hybrid_ts.py, with its fixed item prior) runs closed-loop on simulators
of the same seeds (paired: same users, catalog, requests; policy generator seeded by (seed, 0)) once
per forgetting setting:
`--half-lives` (seconds of event time; "none" = never forget; the simulator makes 2 requests per
second) and `--drift` (Page-Hinkley drift thresholds that trigger a discount, "none" = off). Before
request `--shift-at` a share `--shift-share` of the users get freshly drawn tastes (the simulator's
`shift_at`; 0 = no shift, the slow drift only). Printed per setting: expected CTR (the served
slates' exact click probability per shown item, free of click-sampling noise) and CTR in windows of
requests before the shift, just after it, later, and at the end, and each setting minus "never
forget" per window, paired by seed, with 95% t-intervals.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from scipy import stats

from encoders.embedding import ItemEmbedding
from encoders.hashing import HashingEncoder
from online.experiment import ExperimentConfig, run_policy
from online.policies.hybrid_ts import HybridThompsonSampling, HybridTSParams
from online.simulation import Simulator, SimulatorConfig
from online.state import InMemoryStore

DIM = 32
FIXED = HybridTSParams(estimate_item_prior=False)
"""The hybrid with its fixed item prior: the setting docs/results.md's forgetting figures were measured with."""


def interval(values: list[float]) -> tuple[float, float]:
    array = np.asarray(values, dtype=np.float64)
    if len(array) < 2:
        return float(array.mean()), float("nan")
    return float(array.mean()), float(stats.t.ppf(0.975, len(array) - 1) * array.std(ddof=1) / np.sqrt(len(array)))


def windows(requests: int, shift_at: int) -> dict[str, tuple[int, int]]:
    """Named [start, stop) request windows around the shift (or the run's quarters without one)."""
    at = shift_at if shift_at else requests // 2
    return {"before": (max(0, at - 1000), at), "after 0-500": (at, min(requests, at + 500)),
            "after 500-1500": (min(requests, at + 500), min(requests, at + 1500)),
            "last 1000": (max(at, requests - 1000), requests)}


def parse_settings(half_lives: str, drifts: str) -> list[tuple[str, HybridTSParams]]:
    out = []
    for text in filter(None, half_lives.split(",")):
        half_life = None if text == "none" else float(text)
        out.append(("never" if half_life is None else f"half-life {text} s", replace(FIXED, half_life_s=half_life)))
    for text in filter(None, drifts.split(",")):
        if text != "none":
            out.append((f"drift {text}", replace(FIXED, drift_threshold=float(text))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--shift-at", type=int, default=3000, help="0 = no shift")
    parser.add_argument("--shift-share", type=float, default=1.0)
    parser.add_argument("--half-lives", default="none,600,1800")
    parser.add_argument("--drift", default="none")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    settings = parse_settings(args.half_lives, args.drift)
    spans = windows(args.requests, args.shift_at)
    encoder = HashingEncoder(dim=256)
    figures: dict[str, dict[str, dict[str, list[float]]]] = {
        label: {w: {"expected_ctr": [], "ctr": []} for w in spans} for label, _ in settings}
    started = time.perf_counter()
    for seed in range(args.seeds):
        config = SimulatorConfig(horizon=args.requests, seed=seed, shift_at=args.shift_at or None,
                                 shift_share=args.shift_share)
        embed = ItemEmbedding.fitted(encoder, DIM, Simulator(config).initial_items(), seed)
        for label, params in settings:
            run = run_policy(HybridThompsonSampling(params), Simulator(config), embed, InMemoryStore(), DIM,
                             ExperimentConfig(n_requests=args.requests), np.random.default_rng([seed, 0]))
            for name, (start, stop) in spans.items():
                shown = float(run.shown[start:stop].sum())
                figures[label][name]["expected_ctr"].append(float(run.expected_clicks[start:stop].sum()) / shown)
                figures[label][name]["ctr"].append(float(run.clicks[start:stop].sum()) / shown)
        print(f"  seed {seed} done after {time.perf_counter() - started:.0f} s", flush=True)
    shift = f"shift before request {args.shift_at} ({args.shift_share:.0%} of users)" if args.shift_at else "no shift"
    print(f"\nhybrid TS, {args.seeds} seeds x {args.requests} requests, {shift}; expected CTR (CTR) per window")
    print(f"{'setting':22s} " + " ".join(f"{name:>22s}" for name in spans))
    for label, _ in settings:
        cells = [f"{np.mean(figures[label][w]['expected_ctr']):.4f} ({np.mean(figures[label][w]['ctr']):.4f})"
                 for w in spans]
        print(f"{label:22s} " + " ".join(f"{c:>22s}" for c in cells))
    base = settings[0][0]
    print(f"\nexpected CTR change against {base!r}, paired by seed, 95% t-interval (percent of {base!r})")
    for label, _ in settings[1:]:
        cells = []
        for w in spans:
            ref = figures[base][w]["expected_ctr"]
            mean, half = interval((100 * (np.subtract(figures[label][w]["expected_ctr"], ref)) / np.mean(ref)).tolist())
            cells.append(f"{mean:+.1f}% [{mean - half:+.1f}, {mean + half:+.1f}]")
        print(f"{label:22s} " + " ".join(f"{c:>22s}" for c in cells))
    print(f"(all runs: {time.perf_counter() - started:.0f} s, a shared machine)")
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "figures": figures}, indent=2))


if __name__ == "__main__":
    main()
