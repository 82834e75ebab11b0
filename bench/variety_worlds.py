"""The recommended diversity setting in two worlds: users who value variety, and users who do not.

    OMP_NUM_THREADS=1 .venv/bin/python bench/variety_worlds.py [--seeds 12] [--requests 2000]
        [--satiation 0,0.5,1] [--setting JSON] [--vectors bert|hashing-pca] [--json PATH]

For every satiation strength (0 = the simulator's default world, clicks independent of what else
the slate shows; > 0 = users who value variety, `online.simulation.satiation`: an item's click
probability falls with its attribute likeness to the items above it), linear TS runs closed-loop
without objectives and with `--setting` (default: docs/objectives.md's recommendation within the
CTR budget, `ild0.15^1>2+abs`: greedy ILD 0.15 in score units, weight growing with position from
position 2, all candidates re-ranked), on the same seeds (paired: same users, catalog, requests and
policy seed). It prints CTR, expected CTR (the served slates' exact click probability) and raw-space
ILD changes against each world's own baseline with 95% t-intervals over the per-seed differences,
and the issue-22 verdict: the setting must raise CTR where users value variety (every strength
> 0) and cost at most 3% where they do not (strength 0), on the point estimates; the intervals
say how sure. Runs `bench/objectives_sweep.py`'s `simulate` (the same protocol and figures).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import numpy.typing as npt
from objectives_sweep import embedding_for, simulate  # the sweep's protocol, encoder and cache

from online.evaluation.sweep import paired_change
from online.evaluation.sweep_points import memo_embed
from online.events import Item
from online.experiment import Embed
from online.objectives import ObjectiveSettings
from online.simulation import SatiationConfig, Simulator, SimulatorConfig

RECOMMENDED = {"diversity": 0.15, "diversity_method": "ild", "diversity_position_power": 1,
               "diversity_from_position": 2, "score_units": "score", "shortlist_factor": 0}
MAX_CTR_COST = 0.03
FIGURES = ("ctr", "expected_ctr", "ild")


def world_changes(points: Sequence[object]) -> dict[str, list[float]]:
    """{figure: [percent, low, high]} of the setting (points[1]) against the baseline (points[0])."""
    base, variant = (p.extra["per_seed"] for p in points)  # type: ignore[attr-defined]
    out = {}
    for figure in FIGURES:
        change = paired_change(base[figure], variant[figure])
        out[figure] = [change.percent, change.low, change.high]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=12)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--n-draws", type=int, default=32)
    parser.add_argument("--satiation", default="0,0.5,1", help="satiation strengths, comma-separated (0 = none)")
    parser.add_argument("--setting", default=json.dumps(RECOMMENDED), help="ObjectiveSettings as JSON")
    parser.add_argument("--vectors", choices=["bert", "hashing-pca"], default="bert")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    strengths = [float(part) for part in args.satiation.split(",") if part.strip()]
    setting = ObjectiveSettings(**json.loads(args.setting))
    seeds = tuple(range(args.first_seed, args.first_seed + args.seeds))
    shared = embedding_for(args.vectors, args.dim, seeds[0])

    def raw_embed(items: Sequence[Item]) -> npt.NDArray[np.float32]:
        return shared.encode_texts([item.text() for item in items])

    embeds: dict[int, tuple[Embed, Embed | None]] = {}

    def embeds_for(config: SimulatorConfig) -> tuple[Embed, Embed | None]:
        if config.seed not in embeds:  # the catalog depends on the seed only, not on satiation
            bandit = memo_embed(shared.refitted(Simulator(config).initial_items(), config.seed))
            embeds[config.seed] = (bandit, memo_embed(raw_embed))
        return embeds[config.seed]

    started = time.perf_counter()
    print(f"{len(strengths)} worlds x {len(seeds)} seeds x {args.requests} requests, linear TS, {args.vectors} "
          f"d={args.dim}; setting {setting.model_dump(exclude_defaults=True)}", flush=True)
    results: dict[str, dict[str, object]] = {}
    try:
        for strength in strengths:
            points = simulate([ObjectiveSettings(), setting], seeds, args.requests, args.dim, args.n_draws,
                              embeds_for, lambda done: None, SimulatorConfig.n_candidates,
                              SatiationConfig(strength=strength))
            changes = world_changes(points)
            base, variant = points[0], points[1]
            results[f"{strength:g}"] = {"baseline_ctr": base.ctr, "setting_ctr": variant.ctr,
                                        "baseline_ild": base.ild, "setting_ild": variant.ild, "changes": changes}
            cells = "  ".join(f"{f} {c[0]:+.1f}% [{c[1]:+.1f}, {c[2]:+.1f}]" for f, c in changes.items())
            print(f"satiation {strength:g}: CTR {base.ctr:.4f} -> {variant.ctr:.4f}; {cells}  "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
    finally:
        shared.close()
    print()
    for strength, result in results.items():
        ctr = result["changes"]["ctr"]  # type: ignore[index]
        if float(strength) == 0:
            met = ctr[0] >= -100 * MAX_CTR_COST
            print(f"no satiation: CTR {ctr[0]:+.1f}% [{ctr[1]:+.1f}, {ctr[2]:+.1f}]: cost at most "
                  f"{100 * MAX_CTR_COST:.0f}% {'MET' if met else 'NOT met'} (point estimate)")
        else:
            met = ctr[0] > 0
            sure = "interval above 0" if ctr[1] > 0 else "interval includes 0"
            print(f"satiation {strength}: CTR {ctr[0]:+.1f}% [{ctr[1]:+.1f}, {ctr[2]:+.1f}]: raises CTR "
                  f"{'MET' if met else 'NOT met'} (point estimate; {sure})")
    print(f"(all runs: {time.perf_counter() - started:.0f} s on a shared machine)")
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "worlds": results}, indent=2))


if __name__ == "__main__":
    main()
