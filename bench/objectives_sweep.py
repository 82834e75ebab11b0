"""Objective trade-offs on the simulator: the issue-6 goals for diversity and exposure fairness.

    OMP_NUM_THREADS=1 .venv/bin/python bench/objectives_sweep.py [--seeds 3] [--first-seed 0] [--requests 2000]
        [--vectors bert|hashing-pca|hashing-raw] [--diversity-space raw|bandit]
        [--diversity 0,1,2,3,5,10,20] [--fairness 0.5,1,2] [--method mmr|ild|dpp] [--shortlist 5]
        [--candidates 100] [--position-power 0,1] [--from-position 0,1] [--score-units standardised|score]
        [--satiation 0]

Linear TS runs closed-loop on simulators of the same seeds for the baseline (no objective) and
every setting (paired: same users, catalog and request stream per seed, same policy seed). The
settings are a diversity axis (MMR weights, fairness 0; every weight > 0 crossed with the
`--position-power` and `--from-position` values: position-aware re-ranking, the weight at slate
position p being w * (1 + p) ** power from position `from` on, see online/objectives/rerank.py;
labelled e.g. "mmr5^1>1") and a fairness axis (per-item exposure
fairness, diversity 0), plus `--extra` combinations. The recommended settings follow
`online.evaluation.sweep.recommend` on the means over seeds (highest ILD / lowest exposure Gini
among settings whose CTR is >= 95% of the baseline's). For each it prints the ILD, Gini and CTR
changes against the baseline, paired by seed, with a 95% t-interval, and whether the goal holds:

- diversity: intra-list diversity +30% for at most 5% CTR loss;
- fairness: exposure Gini -1/3 for at most 5% CTR loss.

It also prints every setting's ILD, CTR and expected-CTR changes (paired, 95% t-intervals);
expected CTR = the served slates' exact click probability from the simulator, free of
click-sampling noise (not of the learning path's), so a steadier reading of the CTR cost.

`--satiation S` runs every setting in a world of users who value variety (the simulator's
`SatiationConfig(strength=S)`: an item's click probability falls with its attribute likeness
to the items above it in the slate; 0, the default, is the independent click model).

"Met" uses the point estimates (CTR change >= -5%); the CTR interval says how sure that is. ILD
is the mean pairwise cosine distance of a slate's k items; it cannot exceed 1 + 1/(k - 1)
(k unit vectors sum to a vector of norm >= 0), which the script prints next to the baseline.

Diversity space (`--diversity-space`): the item embeddings MMR re-ranks with and ILD is measured
on. "raw" (the default with a PCA projection, i.e. --vectors bert or hashing-pca) = the encoder's
own unit embeddings (384-d for MiniLM), uncentred, where related texts have clearly positive
cosine; "bandit" = the bandit vectors (the PCA projection: centred, unrelated items nearly
orthogonal, so ILD starts near its bound). ILD is printed in both spaces for every setting.

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
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


import numpy as np
import numpy.typing as npt

from encoders.embedding import EncoderUnavailableError, ItemEmbedding, open_encoder
from encoders.hashing import HashingEncoder
from online.evaluation.bootstrap import bootstrap_ratio
from online.evaluation.sweep import (
    SweepPoint,
    Target,
    label_of,
    one_axis_settings,
    paired_change,
    parse_positions,
    parse_weights,
    recommend,
)
from online.evaluation.sweep_points import memo_embed
from online.events import Item
from online.experiment import Embed, ExperimentConfig, run_policy
from online.objectives import ObjectiveSettings
from online.policies import make_policy
from online.simulation import SatiationConfig, Simulator, SimulatorConfig
from online.state import InMemoryStore

ROOT = Path(__file__).resolve().parents[1]
GOALS: dict[Target, float] = {"ild": 0.30, "gini": -1 / 3}
MAX_CTR_LOSS = 0.05


def embedding_for(vectors: str, dim: int, seed: int) -> ItemEmbedding:
    """The bandit vectors of --vectors (hashing straight at d, hashing at 256 projected, or BERT
    projected, its embeddings cached); the projection refitted per seed by `embeds_for`."""
    if vectors == "hashing-raw":
        return ItemEmbedding(HashingEncoder(dim=dim), dim)
    try:
        encoder = open_encoder("hashing" if vectors == "hashing-pca" else "bert")
    except EncoderUnavailableError as error:
        raise SystemExit(f"--vectors bert: {error}") from None
    first = Simulator(SimulatorConfig(seed=seed)).initial_items()
    return ItemEmbedding.fitted(encoder, dim, first, seed, cache_dir=ROOT / ".data" / "sweep-embedding-cache")


def simulate(settings: list[ObjectiveSettings], seeds: tuple[int, ...], requests: int, dim: int, n_draws: int,
             embeds_for: Callable[[SimulatorConfig], tuple[Embed, Embed | None]],
             progress: Callable[[int], None],
             candidates: int | None = SimulatorConfig.n_candidates,
             satiation: SatiationConfig | None = None) -> list[SweepPoint]:
    """One point per setting, linear TS paired over `seeds` (as `slatestream.sweep.simulate_points`,
    plus diversity embeddings): CTR over all requests (bootstrap interval), per-seed CTR, ILD
    in the diversity space ("ild"), ILD over the bandit vectors ("ild_bandit") and Gini.
    candidates: the simulator's candidates per request (None: all released items); satiation:
    the simulator's users who value variety (None: off)."""
    figures = ("ctr", "ild", "ild_bandit", "gini", "expected_ctr")
    per_seed: list[dict[str, list[float]]] = [{f: [] for f in figures} for _ in settings]
    pooled: list[tuple[list[np.ndarray], list[np.ndarray]]] = [([], []) for _ in settings]
    done = 0
    for seed in seeds:
        config = SimulatorConfig(horizon=requests, seed=seed, n_candidates=candidates,
                                 satiation=satiation or SatiationConfig())
        embed, diversity_embed = embeds_for(config)
        for index, setting in enumerate(settings):
            run = run_policy(make_policy("linear_ts"), Simulator(config), embed, InMemoryStore(), dim,
                             ExperimentConfig(n_requests=requests, n_draws=n_draws), np.random.default_rng([seed, 0]),
                             objectives=setting, diversity_embed=diversity_embed)
            summary = run.summary()
            for figure, key in zip(figures, ("ctr", "diversity", "bandit_diversity", "exposure_gini", "expected_ctr"),
                                   strict=True):
                per_seed[index][figure].append(summary[key])
            pooled[index][0].append(run.clicks)
            pooled[index][1].append(run.shown.astype(np.float64))
            done += requests
            progress(done)
    points = []
    for index, setting in enumerate(settings):
        clicks, shown = np.concatenate(pooled[index][0]), np.concatenate(pooled[index][1])
        ctr, low, high = bootstrap_ratio(clicks, shown, rng=np.random.default_rng([index, 7]), n_bootstrap=500)
        seed_figures = per_seed[index]
        points.append(SweepPoint(label_of(setting), setting, ctr, float(np.mean(seed_figures["ild"])),
                                 float(np.mean(seed_figures["gini"])), low, high,
                                 {"seeds": list(seeds), "per_seed": seed_figures,
                                  "ild_bandit": float(np.mean(seed_figures["ild_bandit"])),
                                  "expected_ctr": float(np.mean(seed_figures["expected_ctr"]))}))
    return points


def settings_of(args: argparse.Namespace) -> list[ObjectiveSettings]:
    """The bench's grid: one objective at a time, then the --extra JSON settings
    (`online.evaluation.sweep.one_axis_settings`)."""
    try:
        return one_axis_settings(
            parse_weights(args.diversity, "--diversity"), parse_weights(args.novelty, "--novelty"),
            parse_weights(args.fairness, "--fairness"), args.method, args.shortlist,
            parse_weights(args.position_power, "--position-power"), parse_positions(args.from_position,
                                                                                    "--from-position"),
            args.score_units, [json.loads(text) for text in filter(None, args.extra.split(";"))])
    except ValueError as error:
        raise SystemExit(str(error)) from None


def print_changes(points: list[SweepPoint]) -> None:
    """Every setting's ILD, CTR and expected-CTR change against the baseline (points[0]), paired by
    seed, with 95% t-intervals (none with one seed)."""
    print(f"\n{'setting':22s} {'ILD change':>26s} {'CTR change':>26s} {'expected CTR change':>26s}")
    base = points[0].extra["per_seed"]
    for point in points[1:]:
        seeds = point.extra["per_seed"]
        cells = [paired_change(base[figure], seeds[figure]).describe() for figure in ("ild", "ctr", "expected_ctr")]
        print(f"{point.label:22s} " + " ".join(f"{cell:>26s}" for cell in cells))


def report(points: list[SweepPoint], target: Target, k: int, space: str) -> dict[str, object]:
    base = points[0]
    chosen = recommend(points, base, target, MAX_CTR_LOSS)
    name = "diversity (ILD +30%)" if target == "ild" else "fairness (exposure Gini -1/3)"
    if chosen is None:
        print(f"\n{name}: no setting keeps CTR >= 95% of the baseline's — goal NOT met")
        return {"target": target, "recommended": None, "met": False}
    point = points[chosen]
    seeds = base.extra["per_seed"], point.extra["per_seed"]
    changes = {figure: paired_change(seeds[0][figure], seeds[1][figure])
               for figure in ("ild", "ild_bandit", "gini", "ctr", "expected_ctr")}
    main = changes[target].percent / 100
    met = (main >= GOALS[target] if target == "ild" else main <= GOALS[target]) and (
        changes["ctr"].percent >= -100 * MAX_CTR_LOSS)
    print(f"\n{name}: recommended {point.label} ({point.settings.diversity_method}, shortlist "
          f"{point.settings.shortlist_factor}k)")
    print(f"  ILD   {base.ild:.3f} -> {point.ild:.3f}  {changes['ild'].describe()}  ({space} space)"
          + (f"   (ILD bound for k={k}: {1 + 1 / (k - 1):.3f}, i.e. at most "
             f"{100 * ((1 + 1 / (k - 1)) / base.ild - 1):+.1f}% over this baseline)" if target == "ild" else ""))
    if space != "bandit":
        bandit = base.extra["ild_bandit"], point.extra["ild_bandit"]
        print(f"  ILD   {bandit[0]:.3f} -> {bandit[1]:.3f}  {changes['ild_bandit'].describe()}  (bandit space, "
              "for comparison)")
    print(f"  Gini  {base.gini:.3f} -> {point.gini:.3f}  {changes['gini'].describe()}")
    print(f"  CTR   {base.ctr:.4f} -> {point.ctr:.4f}  {changes['ctr'].describe()}  (paired by seed, 95% t-interval)")
    expected = base.extra["expected_ctr"], point.extra["expected_ctr"]
    print(f"  expected CTR {expected[0]:.4f} -> {expected[1]:.4f}  {changes['expected_ctr'].describe()}  (the "
          "served slates' exact click probability: no click-sampling noise)")
    print(f"  goal {'MET' if met else 'NOT met'} (point estimates; CTR loss allowed {100 * MAX_CTR_LOSS:.0f}%)")
    return {"target": target, "recommended": point.label, "met": met,
            "changes_percent": {f: [c.percent, c.low, c.high] for f, c in changes.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds first .. first + seeds - 1 (held-out seeds for a setting picked on others)")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--vectors", choices=["bert", "hashing-pca", "hashing-raw"], default="bert")
    parser.add_argument("--diversity-space", choices=["raw", "bandit"], default=None,
                        help="embeddings MMR and ILD use (default: raw with a PCA projection, else bandit)")
    parser.add_argument("--diversity", default="0,1,2,3,5,10,20", help="MMR weights (fairness 0)")
    parser.add_argument("--fairness", default="0.5,1,2", help="per-item exposure-fairness weights (diversity 0)")
    parser.add_argument("--novelty", default="1", help="novelty weights (others 0)")
    parser.add_argument("--extra", default="", help='";"-separated JSON settings, e.g. {"diversity": 2, "fairness": 1}')
    parser.add_argument("--method", choices=["mmr", "ild", "dpp"], default="mmr",
                        help="re-ranking: MMR (max similarity), ILD (mean similarity) or DPP")
    parser.add_argument("--shortlist", type=int, default=5, help="re-rank the top shortlist x k per draw (0 = all)")
    parser.add_argument("--candidates", type=int, default=SimulatorConfig.n_candidates,
                        help="the simulator's candidates per request (0 = all released items)")
    parser.add_argument("--position-power", default="0",
                        help="position-aware diversity: the weight at position p is w * (1 + p) ** power (0 = flat)")
    parser.add_argument("--from-position", default="0",
                        help="position-aware diversity: positions before this are ranked by utility alone (0 = none)")
    parser.add_argument("--score-units", choices=["standardised", "score"], default="standardised",
                        help="units of every re-ranking setting's weights, --extra ones included unless their "
                             "JSON names score_units (ObjectiveSettings.score_units; in score units novelty and "
                             "fairness weights of ~1 outweigh relevance)")
    parser.add_argument("--satiation", type=float, default=0.0,
                        help="users who value variety: the simulator's satiation strength (0 = off)")
    parser.add_argument("--n-draws", type=int, default=32)
    parser.add_argument("--json", type=Path, default=None, help="also write every point here")
    args = parser.parse_args()
    if args.candidates is not None and args.candidates < 0:
        parser.error(f"--candidates: want >= 0 (0 = all released items), got {args.candidates}")
    candidates = args.candidates or None
    settings = settings_of(args)
    shared = embedding_for(args.vectors, args.dim, args.first_seed)
    encoder = shared.encoder
    seeds = tuple(range(args.first_seed, args.first_seed + args.seeds))
    space = args.diversity_space or ("raw" if encoder.dim > args.dim else "bandit")

    def raw_embed(items: Sequence[Item]) -> npt.NDArray[np.float32]:
        return shared.encode_texts([item.text() for item in items])

    def embeds_for(config: SimulatorConfig) -> tuple[Embed, Embed | None]:
        bandit = memo_embed(shared.refitted(Simulator(config).initial_items(), config.seed))
        return bandit, memo_embed(raw_embed) if space == "raw" else None

    print(f"{len(settings)} settings x {len(seeds)} seeds x {args.requests} requests, linear TS, vectors "
          f"{args.vectors} ({encoder.name}) -> d={args.dim}, diversity space {space} "
          f"({encoder.dim if space == 'raw' else args.dim}-d), {candidates or 'all'} candidates per request, "
          f"satiation {args.satiation:g}",
          flush=True)
    started = time.perf_counter()
    runs = len(settings) * len(seeds)

    def progress(requests: int) -> None:
        print(f"  run {requests // args.requests}/{runs} done after {time.perf_counter() - started:.0f} s", flush=True)

    try:
        points = simulate(settings, seeds, args.requests, args.dim, args.n_draws, embeds_for, progress, candidates,
                          SatiationConfig(strength=args.satiation))
    finally:
        shared.close()
    print(f"\n{'setting':22s} {'CTR':>8s} {'exp.CTR':>8s} {'ILD':>7s} {'ILD-bandit':>10s} {'Gini':>7s}   per-seed CTR  "
          f"(ILD: {space} space)")
    for point in points:
        per_seed = " ".join(f"{v:.4f}" for v in point.extra["per_seed"]["ctr"])
        print(f"{point.label:22s} {point.ctr:8.4f} {point.extra['expected_ctr']:8.4f} {point.ild:7.3f} "
              f"{point.extra['ild_bandit']:10.3f} {point.gini:7.3f}   {per_seed}")
    print_changes(points)
    k = SimulatorConfig().k
    verdicts = [report(points, "ild", k, space), report(points, "gini", k, space)]
    print(f"\n(all runs: {time.perf_counter() - started:.0f} s; a loaded shared machine: re-measure when idle)")
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json), "diversity_space": space},
                                         "points": [p.to_dict() for p in points], "verdicts": verdicts}, indent=2))


if __name__ == "__main__":
    main()
