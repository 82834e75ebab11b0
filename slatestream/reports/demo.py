"""The demo report: summary.json, report.md and PNG plots of CTR and regret over requests."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from online.experiment import PolicyRun
from slatestream.reports.plots import pyplot

COLUMNS = (
    ("policy", "policy", "{}"),
    ("ctr", "CTR", "{:.4f}"),
    ("expected_ctr", "expected CTR", "{:.4f}"),
    ("regret", "regret (clicks)", "{:.1f}"),
    ("new_item_ctr", "new-item CTR", "{:.4f}"),
    ("diversity", "diversity", "{:.3f}"),
    ("requests_per_s", "requests/s", "{:.0f}"),
)



def summary_table(summaries: Sequence[dict[str, Any]]) -> str:
    """A Markdown table with one row per policy."""
    header = "| " + " | ".join(title for _, title, _ in COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
    rows = [
        "| " + " | ".join(fmt.format(s[key]) for key, _, fmt in COLUMNS) + " |" for s in summaries
    ]
    return "\n".join([header, rule, *rows])


def _rolling(values: np.ndarray, denominators: np.ndarray, window: int) -> np.ndarray:
    kernel = np.ones(window)
    num = np.convolve(values, kernel, mode="valid")
    den = np.convolve(denominators, kernel, mode="valid")
    return num / np.maximum(den, 1e-9)


def plot_runs(runs: Sequence[PolicyRun], out_dir: Path) -> list[Path]:
    """PNG plots of rolling CTR and cumulative regret over requests; returns their paths."""
    window = max(1, min(500, len(runs[0].clicks) // 10))
    ctr_path, regret_path = out_dir / "ctr.png", out_dir / "regret.png"
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(8, 4.5))
    for run in runs:
        axes.plot(_rolling(run.clicks, run.shown.astype(float), window), label=run.policy)
    axes.set(xlabel="request", ylabel=f"CTR (rolling {window} requests)", title="CTR over time")
    axes.legend()
    figure.tight_layout()
    figure.savefig(ctr_path, dpi=110)
    plt.close(figure)
    figure, axes = plt.subplots(figsize=(8, 4.5))
    for run in runs:
        axes.plot(run.regret, label=run.policy)
    axes.set(xlabel="request", ylabel="cumulative expected regret (clicks)", title="Regret")
    axes.legend()
    figure.tight_layout()
    figure.savefig(regret_path, dpi=110)
    plt.close(figure)
    return [ctr_path, regret_path]


def write_report(
    runs: Sequence[PolicyRun], out_dir: Path, title: str, settings: dict[str, Any]
) -> Path:
    """Write summary.json, report.md, ctr.png and regret.png into out_dir; return report.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summaries = [run.summary() for run in runs]
    (out_dir / "summary.json").write_text(
        json.dumps({"settings": settings, "policies": summaries}, indent=2)
    )
    plots = plot_runs(runs, out_dir)
    lines = [
        f"# {title}",
        "",
        "Settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()),
        "",
        summary_table(summaries),
        "",
        "CTR is clicks per shown item; expected CTR and regret use the simulator's true click",
        "probabilities (regret = oracle slate's expected clicks minus the policy's, summed);",
        "new-item CTR counts items during their first 50 impressions; diversity is the mean",
        "pairwise cosine distance of item vectors within a slate.",
        "",
        *[f"![{p.stem}]({p.name})" for p in plots],
        "",
    ]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines))
    return report
