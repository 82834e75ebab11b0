"""`slatestream evaluate --sweep`: a grid of objective weights, measured, with its Pareto frontier.

    slatestream evaluate --sweep --data sim --out DIR                       # the simulator
    slatestream evaluate --sweep --data obd:PATH --out DIR                  # the Open Bandit sample

Each setting of the grid (`online.evaluation.sweep.SweepGrid`) is one point: its CTR, mean
intra-list diversity (ILD) and exposure Gini. On the simulator every setting runs the same
policy closed-loop on simulators of the same seeds (`online.experiment.run_policy`, paired);
on a log every setting is a `PolicyVariant` evaluated counterfactually in one pass
(`online.evaluation.driver.evaluate_log`; its CTR is the SNIPS estimate, else DR, IPS or
replay, its ILD and Gini those of the slates it would serve). Writes DIR/sweep.json,
DIR/sweep.md, DIR/frontier_ild.png and DIR/frontier_gini.png: Pareto-optimal settings
circled, the recommended ones (`online.evaluation.sweep.recommend`) starred.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from online.evaluation.bootstrap import bootstrap_ratio
from online.evaluation.driver import DriverConfig, PolicyVariant, evaluate_log
from online.evaluation.sweep import SweepPoint, Target, label_of, pareto_front, recommend
from online.events import Item
from online.experiment import Embed, ExperimentConfig, run_policy
from online.features import ItemFeatures
from online.objectives import ObjectiveSettings
from online.policies import POLICIES, make_policy
from online.simulation import Simulator, SimulatorConfig
from online.state import InMemoryStore
from streams.evaluate import LoadedLog, _pyplot

OBD_SWEEP_CAVEAT = (
    "The OBD sample has only 80 items and ~35-40 clicks per 10,000-row log: CTR differences between "
    "settings are within noise (see the intervals), so this frontier is indicative only; ILD and "
    "exposure Gini are measured on the slates each setting would serve (item vectors: item_context.csv "
    "features, standardised, PCA). The relevance model is linear TS on the item vectors only (OBD's user "
    "features are left out to keep the sweep to minutes); CTR is the SNIPS estimate."
)
CTR_ESTIMATORS = ("snips", "dr", "ips", "replay")
"""The CTR of a log point: the first estimate present (SNIPS is never negative, unlike DR on a
small log, so "95% of the baseline's CTR" stays meaningful)."""
Progress = Callable[[int], None]


def memo_embed(embed: Embed) -> Embed:
    """`embed` remembering each item id's vector (the sweep meets the same items once per setting)."""
    vectors: dict[str, np.ndarray[Any, Any]] = {}

    def cached(items: Sequence[Item]) -> np.ndarray[Any, Any]:
        missing = [item for item in items if item.item_id not in vectors]
        if missing:
            vectors.update(zip((item.item_id for item in missing), embed(missing), strict=True))
        return np.stack([vectors[item.item_id] for item in items]) if items else np.zeros((0, 0), np.float32)

    return cached


def obd_item_embed(action_context: np.ndarray[Any, Any], dim: int) -> Embed:
    """OBD item vectors float32[n, min(dim, f)] by item id, from item_context.csv's features
    float[n, f] (`OBDArrays.action_context`: numeric columns, categorical ones one-hot):
    columns standardised, projected on their first `dim` principal components, unit length."""
    matrix = np.asarray(action_context, dtype=np.float64)
    spread = matrix.std(axis=0)
    centred = (matrix - matrix.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    projected = centred @ components[:dim].T
    norms = np.linalg.norm(projected, axis=1, keepdims=True)
    unit = (projected / np.where(norms > 0, norms, 1.0)).astype(np.float32)

    def embed(items: Sequence[Item]) -> np.ndarray[Any, Any]:
        return np.asarray(unit[[int(item.item_id) for item in items]])

    return embed


@dataclass(frozen=True)
class SimulatorSweep:
    """The simulator side: policy name, seeds (paired: every setting sees the same ones),
    requests per run, bandit dimension and the item embedding per seed."""

    policy: str
    seeds: tuple[int, ...]
    requests: int
    dim: int
    embed_for: Callable[[SimulatorConfig], Embed]
    n_draws: int = 32


def simulate_points(settings: Sequence[ObjectiveSettings], sweep: SimulatorSweep, progress: Progress | None = None,
                    n_bootstrap: int = 500) -> list[SweepPoint]:
    """One `SweepPoint` per setting: CTR over all seeds' requests (bootstrap interval over
    requests), mean ILD and exposure Gini over seeds; per-seed values in `extra`."""
    per_seed: list[dict[str, list[float]]] = [{"ctr": [], "ild": [], "gini": []} for _ in settings]
    pooled: list[tuple[list[np.ndarray[Any, Any]], list[np.ndarray[Any, Any]]]] = [([], []) for _ in settings]
    done = 0
    for seed in sweep.seeds:
        simulator_config = SimulatorConfig(horizon=sweep.requests, seed=seed)
        embed = sweep.embed_for(simulator_config)
        for index, setting in enumerate(settings):
            run = run_policy(make_policy(sweep.policy), Simulator(simulator_config), embed, InMemoryStore(), sweep.dim,
                             ExperimentConfig(n_requests=sweep.requests, n_draws=sweep.n_draws),
                             np.random.default_rng([seed, 0]), objectives=setting)
            summary = run.summary()
            per_seed[index]["ctr"].append(summary["ctr"])
            per_seed[index]["ild"].append(summary["diversity"])
            per_seed[index]["gini"].append(summary["exposure_gini"])
            pooled[index][0].append(run.clicks)
            pooled[index][1].append(run.shown.astype(np.float64))
            done += sweep.requests
            if progress is not None:
                progress(done)
    points = []
    for index, setting in enumerate(settings):
        clicks, shown = np.concatenate(pooled[index][0]), np.concatenate(pooled[index][1])
        ctr, low, high = bootstrap_ratio(clicks, shown, rng=np.random.default_rng([index, 7]), n_bootstrap=n_bootstrap)
        figures = per_seed[index]
        points.append(SweepPoint(label_of(setting), setting, ctr, float(np.mean(figures["ild"])),
                                 float(np.mean(figures["gini"])), low, high,
                                 {"seeds": list(sweep.seeds), "per_seed": figures}))
    return points


def log_points(settings: Sequence[ObjectiveSettings], loaded: LoadedLog, policy: str, embed: Embed, dim: int,
               config: DriverConfig, progress: Progress | None = None) -> list[SweepPoint]:
    """One `SweepPoint` per setting, all evaluated counterfactually in one pass over the log."""
    variants = [PolicyVariant(policy, setting, label=label_of(setting)) for setting in settings]
    result = evaluate_log(loaded.events, variants, embed, dim, features=loaded.features, config=config,
                          progress=progress)
    points = []
    for setting, evaluation in zip(settings, result.policies, strict=True):
        name = next(n for n in CTR_ESTIMATORS if n in evaluation.estimates)
        estimate = evaluation.estimates[name]
        points.append(SweepPoint(
            evaluation.policy, setting, estimate.value, evaluation.metrics["intra_list_diversity"],
            evaluation.metrics["exposure_gini"], estimate.ci_low, estimate.ci_high,
            {"ctr_estimator": name, "estimates": {n: e.value for n, e in evaluation.estimates.items()},
             "match_rate": evaluation.metrics["match_rate"]},
        ))
    return points


def plot_frontier(points: Sequence[SweepPoint], target: Target, front: np.ndarray[Any, Any], chosen: int | None,
                  path: Path) -> Path:
    """CTR (with its interval) against ILD or exposure Gini; Pareto points circled, the
    recommended one starred, the baseline's 95% CTR floor dashed."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 5))
    xs = np.array([p.ild if target == "ild" else p.gini for p in points])
    ctr = np.array([p.ctr for p in points])
    low = np.array([p.ctr - p.ctr_low if math.isfinite(p.ctr_low) else 0.0 for p in points])
    high = np.array([p.ctr_high - p.ctr if math.isfinite(p.ctr_high) else 0.0 for p in points])
    axes.errorbar(xs, ctr, yerr=[low, high], fmt="o", color="tab:blue", alpha=0.5, capsize=2, label="setting")
    axes.scatter(xs[front], ctr[front], s=160, facecolors="none", edgecolors="tab:red", label="Pareto-optimal")
    order = np.argsort(xs[front])
    axes.plot(xs[front][order], ctr[front][order], color="tab:red", linewidth=1)
    if chosen is not None:
        axes.scatter([xs[chosen]], [ctr[chosen]], marker="*", s=320, color="gold", edgecolors="black", zorder=5,
                     label=f"recommended: {points[chosen].label}")
    axes.axhline(0.95 * points[0].ctr, color="grey", linestyle="--", label="95% of baseline CTR")
    for x, y, point in zip(xs, ctr, points, strict=True):
        axes.annotate(point.label, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    name = "intra-list diversity (mean cosine distance)" if target == "ild" else "exposure Gini (lower = fairer)"
    axes.set(xlabel=name, ylabel="CTR (reward per shown item)", title=f"CTR vs {target.upper()} over the grid")
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _pct(value: float, base: float) -> str:
    return "n/a" if not (math.isfinite(value) and math.isfinite(base) and base) else f"{100 * (value / base - 1):+.1f}%"


def _verdict(points: Sequence[SweepPoint], chosen: int | None, target: Target) -> str:
    base = points[0]
    if chosen is None:
        return f"no setting keeps CTR >= 95% of the baseline's for {target}"
    point = points[chosen]
    if target == "ild":
        change, goal = point.ild / base.ild - 1, point.ild / base.ild - 1 >= 0.30
        what = f"ILD {base.ild:.3f} -> {point.ild:.3f} ({100 * change:+.1f}%; goal +30%)"
    else:
        change, goal = point.gini / base.gini - 1, point.gini / base.gini - 1 <= -1 / 3
        what = f"Gini {base.gini:.3f} -> {point.gini:.3f} ({100 * change:+.1f}%; goal -33.3%)"
    return (f"**{point.label}**: {what}, CTR {base.ctr:.4f} -> {point.ctr:.4f} ({_pct(point.ctr, base.ctr)}) — "
            f"goal {'met' if goal else 'NOT met'} (point estimates)")


def write_sweep_report(points: Sequence[SweepPoint], out_dir: Path, description: str, caveats: Sequence[str],
                       settings: dict[str, Any]) -> Path:
    """Write sweep.json, sweep.md and the two frontier plots; return sweep.md. points[0]
    must be the baseline (no objective)."""
    if not points or points[0].settings.reranks:
        raise ValueError("points: the first point must be the baseline (all objective weights 0)")
    out_dir.mkdir(parents=True, exist_ok=True)
    ctr = [p.ctr for p in points]
    fronts = {"ild": pareto_front(ctr, [p.ild for p in points], (True, True)),
              "gini": pareto_front(ctr, [p.gini for p in points], (True, False))}
    chosen: dict[Target, int | None] = {t: recommend(points, points[0], t) for t in ("ild", "gini")}
    plots = [plot_frontier(points, t, fronts[t], chosen[t], out_dir / f"frontier_{t}.png") for t in ("ild", "gini")]
    payload = {
        "data": description, "settings": settings, "caveats": list(caveats),
        "points": [{**p.to_dict(), "pareto_ild": bool(fronts["ild"][i]), "pareto_gini": bool(fronts["gini"][i])}
                   for i, p in enumerate(points)],
        "recommended": {t: None if i is None else points[i].label for t, i in chosen.items()},
    }
    (out_dir / "sweep.json").write_text(json.dumps(payload, indent=2, allow_nan=False))
    base = points[0]
    lines = ["# slatestream evaluate --sweep: objective weights against CTR", "", f"Data: {description}.", "",
             *[f"> **Note.** {caveat}\n" for caveat in caveats],
             "Settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()), "",
             "Recommended (highest ILD / lowest Gini among settings with CTR >= 95% of the baseline's):", "",
             f"- diversity: {_verdict(points, chosen['ild'], 'ild')}",
             f"- fairness: {_verdict(points, chosen['gini'], 'gini')}", "",
             "| setting | CTR [95% interval] | CTR change | ILD | ILD change | exposure Gini | Gini change | "
             "Pareto (CTR, ILD) | Pareto (CTR, Gini) |", "|---|---|---|---|---|---|---|---|---|"]
    for i, p in enumerate(points):
        interval = f" [{p.ctr_low:.4f}, {p.ctr_high:.4f}]" if math.isfinite(p.ctr_low) else ""
        lines.append(f"| {p.label} | {p.ctr:.4f}{interval} | {_pct(p.ctr, base.ctr)} | {p.ild:.3f} | "
                     f"{_pct(p.ild, base.ild)} | {p.gini:.3f} | {_pct(p.gini, base.gini)} | "
                     f"{'yes' if fronts['ild'][i] else ''} | {'yes' if fronts['gini'][i] else ''} |")
    lines += ["", *[f"![{plot.stem}]({plot.name})" for plot in plots], ""]
    report = out_dir / "sweep.md"
    report.write_text("\n".join(lines))
    return report


@dataclass(frozen=True)
class SweepOptions:
    """`slatestream evaluate --sweep`'s options (see streams/evaluate.py for their help)."""

    data: str
    policies: str | None
    out: Path
    n_draws: int
    seed: int
    max_rounds: int | None
    behavior_policy: str
    campaign: str
    encoder_kind: str
    model: Path | None
    dim: int
    learn_every: int
    n_bootstrap: int
    diversity: str
    novelty: str
    fairness: str
    method: str
    shortlist: int
    requests: int
    seeds: int
    position_power: str = "0"
    from_position: str = "0"
    score_units: str = "standardised"
    slate_order: str = "greedy"


def run_sweep_command(options: SweepOptions) -> Path:
    """Run the sweep the options describe, write its report, echo a summary; return sweep.md."""
    import click
    from tqdm import tqdm

    from encoders.cache import CachedEncoder, EmbeddingCache
    from encoders.hashing import HashingEncoder
    from online.evaluation.sweep import SweepGrid, parse_positions, parse_weights
    from streams.cli import _encoder
    from streams.demo import make_embed
    from streams.evaluate import load_log

    policy = (options.policies or "linear_ts").split(",")[0].strip()
    if "," in (options.policies or "") or policy not in POLICIES:
        raise click.BadParameter("--sweep takes one registered policy (default linear_ts)", param_hint="--policies")
    try:
        grid = SweepGrid(parse_weights(options.diversity, "--diversity"), parse_weights(options.novelty, "--novelty"),
                         parse_weights(options.fairness, "--fairness"), options.method,  # type: ignore[arg-type]
                         options.shortlist, position_power=parse_weights(options.position_power, "--position-power"),
                         from_position=parse_positions(options.from_position, "--from-position"),
                         score_units=options.score_units, slate_order=options.slate_order)  # type: ignore[arg-type]
        settings = grid.settings()
    except ValueError as error:
        raise click.BadParameter(str(error)) from error
    if options.requests < 1 or options.seeds < 1:
        raise click.BadParameter("--requests and --seeds must be >= 1")
    encoder = _encoder(options.encoder_kind, options.model)
    cache: EmbeddingCache | None = None
    if not isinstance(encoder, HashingEncoder):  # each setting meets the same texts: embed each once
        cache = EmbeddingCache(options.out / "embedding-cache")
        encoder = CachedEncoder(encoder, cache)
    common = {"policy": policy, "grid": len(settings), "method": options.method, "shortlist": options.shortlist,
              "position_power": options.position_power, "from_position": options.from_position,
              "score_units": options.score_units, "slate_order": options.slate_order, "n_draws": options.n_draws}
    caveats: list[str] = []
    if options.data == "sim":
        seeds = tuple(range(options.seed, options.seed + options.seeds))

        def embed_for(config: SimulatorConfig) -> Embed:
            return memo_embed(make_embed(encoder, options.dim, Simulator(config).initial_items(), config.seed))

        sweep = SimulatorSweep(policy, seeds, options.requests, options.dim, embed_for, options.n_draws)
        description = (f"simulator (default config, seeds {list(seeds)}, {options.requests} requests per run), "
                       f"encoder {encoder.name} -> d={options.dim}")
        total: int | None = options.requests * len(seeds) * len(settings)
        try:
            with tqdm(total=total, unit="req", desc="sweep", dynamic_ncols=True, mininterval=1.0) as bar:
                points = simulate_points(settings, sweep, _advance(bar), options.n_bootstrap)
        finally:
            if cache is not None:
                cache.close()
        common |= {"requests": options.requests, "seeds": list(seeds)}
    else:
        loaded = load_log(options.data, options.behavior_policy, options.campaign)
        if not loaded.items:
            raise click.ClickException(f"{options.data}: the log has no catalog items")
        caveats = list(loaded.caveats)
        if options.data.startswith("obd:"):
            from online.datasets import load_obd_arrays, obd_paths

            log_csv, item_csv = obd_paths(options.data.partition(":")[2], options.behavior_policy, options.campaign)
            action_context = load_obd_arrays(log_csv, item_csv).action_context
            if action_context is None:  # pragma: no cover - load_obd_arrays always reads item_context.csv here
                raise click.ClickException(f"{item_csv}: no item features")
            dim = min(options.dim, action_context.shape[1])
            embed, vectors = obd_item_embed(action_context, dim), "item_context.csv features (PCA)"
            caveats = [OBD_SWEEP_CAVEAT]
            loaded = replace(loaded, features=ItemFeatures())  # linear TS on item vectors only (speed)
        else:
            embed, dim = make_embed(encoder, options.dim, loaded.items, options.seed), options.dim
            vectors = encoder.name
        config = DriverConfig(n_draws=options.n_draws, learn_every=options.learn_every,
                              n_bootstrap=options.n_bootstrap, max_rounds=options.max_rounds, seed=options.seed)
        description = f"{loaded.description}, item vectors: {vectors} (d={dim})"
        total = loaded.rounds if options.max_rounds is None or loaded.rounds is None else min(loaded.rounds,
                                                                                             options.max_rounds)
        with tqdm(total=total, unit="round", desc="sweep", dynamic_ncols=True, mininterval=1.0) as bar:
            points = log_points(settings, loaded, policy, embed, dim, config, _advance(bar))
        common |= {"max_rounds": options.max_rounds, "learn_every": options.learn_every, "seed": options.seed}
    report = write_sweep_report(points, options.out, description, caveats, common)
    click.echo(report.read_text().split("| setting |")[0].strip())
    click.echo(f"report: {report}")
    return report


def _advance(bar: Any) -> Progress:
    done = [0]

    def advance(count: int) -> None:
        bar.update(count - done[0])
        done[0] = count

    return advance
