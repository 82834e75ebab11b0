"""Objective trade-offs on the simulator: the issue-6 goals for diversity and exposure fairness.

    OMP_NUM_THREADS=1 .venv/bin/python bench/objectives_sweep.py [--seeds 3] [--requests 2000]
        [--vectors bert|hashing-pca|hashing-raw] [--diversity 0,1,2,3,5,10,20] [--fairness 0.5,1,2]

Linear TS runs closed-loop on simulators of the same seeds for the baseline (no objective) and
every setting (paired: same users, catalog and request stream per seed, same policy seed). The
settings are a diversity axis (MMR weights, fairness 0) and a fairness axis (per-item exposure
fairness, diversity 0), plus `--extra` combinations. The recommended settings follow
`online.evaluation.sweep.recommend` on the means over seeds (highest ILD / lowest exposure Gini
among settings whose CTR is >= 95% of the baseline's). For each it prints the ILD, Gini and CTR
changes against the baseline, paired by seed, with a 95% t-interval, and whether the goal holds:

- diversity: intra-list diversity +30% for at most 5% CTR loss;
- fairness: exposure Gini -1/3 for at most 5% CTR loss.

"Met" uses the point estimates (CTR change >= -5%); the CTR interval says how sure that is. ILD
is the mean pairwise cosine distance of a slate's k items; it cannot exceed 1 + 1/(k - 1)
(k unit vectors sum to a vector of norm >= 0), which the script prints next to the baseline.

Vectors: "bert" = the exported ONNX MiniLM (`slatestream encoders export`), PCA to --dim, as the
demo uses when the model is present (embeddings cached under .data/sweep-embedding-cache);
"hashing-pca" = the hashing encoder (256-d) with the same PCA; "hashing-raw" = a --dim-d hashing
encoder without PCA (uncentred vectors, higher mean similarity, the earlier measurements').
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from encoders.base import Encoder
from encoders.cache import CachedEncoder, EmbeddingCache
from encoders.hashing import HashingEncoder
from online.evaluation.sweep import SweepGrid, SweepPoint, Target, paired_change, parse_weights, recommend
from online.experiment import Embed
from online.objectives import ObjectiveSettings
from online.simulation import Simulator, SimulatorConfig
from streams.sweep import SimulatorSweep, memo_embed, simulate_points

ROOT = Path(__file__).resolve().parents[1]
GOALS: dict[Target, float] = {"ild": 0.30, "gini": -1 / 3}
MAX_CTR_LOSS = 0.05


def encoder_for(vectors: str, dim: int) -> tuple[Encoder, EmbeddingCache | None]:
    if vectors == "hashing-raw":
        return HashingEncoder(dim=dim), None
    if vectors == "hashing-pca":
        return HashingEncoder(dim=256), None
    from encoders.onnx_encoder import OnnxEncoder, default_model_path

    path = default_model_path()
    if not path.exists():
        raise SystemExit(f"--vectors bert: no exported model at {path} (run `slatestream encoders export`)")
    cache = EmbeddingCache(ROOT / ".data" / "sweep-embedding-cache")
    return CachedEncoder(OnnxEncoder(path), cache), cache


def settings_of(args: argparse.Namespace) -> list[ObjectiveSettings]:
    shortlist = args.shortlist
    diversity = SweepGrid(parse_weights(args.diversity, "--diversity"), (0.0,), (0.0,), args.method, shortlist)
    fairness = SweepGrid((0.0,), (0.0,), parse_weights(args.fairness, "--fairness"), args.method, shortlist)
    novelty = SweepGrid((0.0,), parse_weights(args.novelty, "--novelty"), (0.0,), args.method, shortlist)
    out: list[ObjectiveSettings] = []
    for setting in [*diversity.settings(), *fairness.settings(), *novelty.settings()]:
        if setting not in out:
            out.append(setting)
    for text in filter(None, args.extra.split(";")):
        out.append(ObjectiveSettings(shortlist_factor=shortlist, diversity_method=args.method, **json.loads(text)))
    return out


def report(points: list[SweepPoint], target: Target, k: int) -> dict[str, object]:
    base = points[0]
    chosen = recommend(points, base, target, MAX_CTR_LOSS)
    name = "diversity (ILD +30%)" if target == "ild" else "fairness (exposure Gini -1/3)"
    if chosen is None:
        print(f"\n{name}: no setting keeps CTR >= 95% of the baseline's — goal NOT met")
        return {"target": target, "recommended": None, "met": False}
    point = points[chosen]
    seeds = base.extra["per_seed"], point.extra["per_seed"]
    changes = {figure: paired_change(seeds[0][figure], seeds[1][figure]) for figure in ("ild", "gini", "ctr")}
    main = changes[target].percent / 100
    met = (main >= GOALS[target] if target == "ild" else main <= GOALS[target]) and (
        changes["ctr"].percent >= -100 * MAX_CTR_LOSS)
    print(f"\n{name}: recommended {point.label} ({point.settings.diversity_method}, shortlist "
          f"{point.settings.shortlist_factor}k)")
    print(f"  ILD   {base.ild:.3f} -> {point.ild:.3f}  {changes['ild'].describe()}"
          + (f"   (ILD bound for k={k}: {1 + 1 / (k - 1):.3f}, i.e. at most "
             f"{100 * ((1 + 1 / (k - 1)) / base.ild - 1):+.1f}% over this baseline)" if target == "ild" else ""))
    print(f"  Gini  {base.gini:.3f} -> {point.gini:.3f}  {changes['gini'].describe()}")
    print(f"  CTR   {base.ctr:.4f} -> {point.ctr:.4f}  {changes['ctr'].describe()}  (paired by seed, 95% t-interval)")
    print(f"  goal {'MET' if met else 'NOT met'} (point estimates; CTR loss allowed {100 * MAX_CTR_LOSS:.0f}%)")
    return {"target": target, "recommended": point.label, "met": met,
            "changes_percent": {f: [c.percent, c.low, c.high] for f, c in changes.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--vectors", choices=["bert", "hashing-pca", "hashing-raw"], default="bert")
    parser.add_argument("--diversity", default="0,1,2,3,5,10,20", help="MMR weights (fairness 0)")
    parser.add_argument("--fairness", default="0.5,1,2", help="per-item exposure-fairness weights (diversity 0)")
    parser.add_argument("--novelty", default="1", help="novelty weights (others 0)")
    parser.add_argument("--extra", default="", help='";"-separated JSON settings, e.g. {"diversity": 2, "fairness": 1}')
    parser.add_argument("--method", choices=["mmr", "dpp"], default="mmr")
    parser.add_argument("--shortlist", type=int, default=5, help="re-rank the top shortlist x k per draw (0 = all)")
    parser.add_argument("--n-draws", type=int, default=32)
    parser.add_argument("--json", type=Path, default=None, help="also write every point here")
    args = parser.parse_args()
    settings = settings_of(args)
    encoder, cache = encoder_for(args.vectors, args.dim)
    seeds = tuple(range(args.seeds))

    def embed_for(config: SimulatorConfig) -> Embed:
        from streams.demo import make_embed

        return memo_embed(make_embed(encoder, args.dim, Simulator(config).initial_items(), config.seed))

    print(f"{len(settings)} settings x {len(seeds)} seeds x {args.requests} requests, linear TS, vectors "
          f"{args.vectors} ({encoder.name}) -> d={args.dim}", flush=True)
    started = time.perf_counter()
    runs = len(settings) * len(seeds)

    def progress(requests: int) -> None:
        print(f"  run {requests // args.requests}/{runs} done after {time.perf_counter() - started:.0f} s", flush=True)

    try:
        points = simulate_points(settings, SimulatorSweep("linear_ts", seeds, args.requests, args.dim, embed_for,
                                                          args.n_draws), progress)
    finally:
        if cache is not None:
            cache.close()
    print(f"\n{'setting':22s} {'CTR':>8s} {'ILD':>7s} {'Gini':>7s}   per-seed CTR")
    for point in points:
        per_seed = " ".join(f"{v:.4f}" for v in point.extra["per_seed"]["ctr"])
        print(f"{point.label:22s} {point.ctr:8.4f} {point.ild:7.3f} {point.gini:7.3f}   {per_seed}")
    k = SimulatorConfig().k
    verdicts = [report(points, "ild", k), report(points, "gini", k)]
    print(f"\n(all runs: {time.perf_counter() - started:.0f} s; a loaded shared machine: re-measure when idle)")
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)},
                                         "points": [p.to_dict() for p in points], "verdicts": verdicts}, indent=2))


if __name__ == "__main__":
    main()
