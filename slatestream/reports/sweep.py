"""The sweep report: sweep.json, sweep.md and the two frontier plots (Pareto-optimal settings
circled, the recommended ones starred)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from online.evaluation.sweep import SweepPoint, Target, pareto_front, recommend
from slatestream.reports.plots import pyplot


def plot_frontier(points: Sequence[SweepPoint], target: Target, front: np.ndarray[Any, Any], chosen: int | None,
                  path: Path) -> Path:
    """CTR (with its interval) against ILD or exposure Gini; Pareto points circled, the
    recommended one starred, the baseline's 95% CTR floor dashed."""
    plt = pyplot()
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
