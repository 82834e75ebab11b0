"""The evaluation report: evaluation.json, report.md and two PNG plots."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from online.evaluation.summary import EvaluationResult
from slatestream.reports.plots import pyplot

ESTIMATOR_ORDER = ("replay", "ips", "snips", "dr", "dm", "slate_iips", "slate_rips", "slate_sips")


def fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def plot_estimates(result: EvaluationResult, path: Path) -> Path:
    """Point estimates with their intervals, one group per policy, the on-policy CTR as a line."""
    names = [n for n in ESTIMATOR_ORDER if any(n in p.estimates and not n.startswith("slate") for p in
                                                 result.policies)]
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(max(6.0, 1.6 * len(result.policies) * max(len(names), 1) / 3), 4.5))
    width = 0.8 / max(len(names), 1)
    for j, name in enumerate(names):
        xs, values, low, high = [], [], [], []
        for i, evaluation in enumerate(result.policies):
            estimate = evaluation.estimates.get(name)
            if estimate is None or math.isnan(estimate.value):
                continue
            xs.append(i + (j - (len(names) - 1) / 2) * width)
            values.append(estimate.value)
            low.append(estimate.value - estimate.ci_low if not math.isnan(estimate.ci_low) else 0.0)
            high.append(estimate.ci_high - estimate.value if not math.isnan(estimate.ci_high) else 0.0)
        axes.errorbar(xs, values, yerr=[low, high], fmt="o", capsize=3, label=name)
    axes.axhline(result.on_policy.value, color="grey", linestyle="--", label="logged (on-policy) CTR")
    axes.axhspan(result.on_policy.ci_low, result.on_policy.ci_high, color="grey", alpha=0.15)
    axes.set_xticks(range(len(result.policies)), [p.policy for p in result.policies])
    axes.set(ylabel="reward per shown item (CTR)", title="Counterfactual estimates, 95% bootstrap intervals")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_ctr_over_log(result: EvaluationResult, path: Path) -> Path:
    """Rolling logged CTR over the log, and each policy's running DR estimate."""
    rewards = result.logged_rewards
    window = max(1, min(1000, rewards.size // 10))
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(8, 4.5))
    rolling = np.convolve(rewards, np.ones(window), mode="valid") / window
    axes.plot(np.arange(window, rewards.size + 1), rolling, color="grey", label=f"logged CTR (rolling {window})")
    for evaluation in result.policies:
        if evaluation.dr_running.size:
            axes.plot(np.arange(1, evaluation.dr_running.size + 1), evaluation.dr_running,
                      label=f"{evaluation.policy}: running DR")
    axes.set(xlabel="logged observation (log order)", ylabel="CTR", title="CTR over the log")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _estimate_table(result: EvaluationResult) -> list[str]:
    names = [n for n in ESTIMATOR_ORDER if any(n in p.estimates for p in result.policies)]
    lines = ["| policy | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for evaluation in result.policies:
        cells = []
        for name in names:
            e = evaluation.estimates.get(name)
            cells.append("—" if e is None else f"{fmt(e.value)} [{fmt(e.ci_low)}, {fmt(e.ci_high)}]")
        lines.append(f"| {evaluation.policy} | " + " | ".join(cells) + " |")
    return lines


def _metric_table(result: EvaluationResult) -> list[str]:
    names = list(result.policies[0].metrics)
    lines = ["| policy | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for evaluation in result.policies:
        lines.append(f"| {evaluation.policy} | " + " | ".join(fmt(evaluation.metrics[n], 3) for n in names) + " |")
    return lines


def write_evaluation_report(result: EvaluationResult, out_dir: Path, description: str,
                            caveats: Sequence[str] = (), extra: dict[str, Any] | None = None) -> Path:
    """Write evaluation.json, estimates.png, ctr_over_log.png and report.md; return report.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"data": description, **(extra or {}), **result.to_dict()}
    (out_dir / "evaluation.json").write_text(json.dumps(payload, indent=2, allow_nan=False))
    plots = [plot_estimates(result, out_dir / "estimates.png"), plot_ctr_over_log(result, out_dir / "ctr_over_log.png")]
    counts, on_policy = result.counts, result.on_policy
    lines = [
        "# slatestream evaluate: counterfactual evaluation on a logged stream", "",
        f"Data: {description}.", "",
        *[f"> **Note.** {caveat}\n" for caveat in caveats],
        "Settings: " + ", ".join(f"{k}={v}" for k, v in result.settings.items()), "",
        f"Events: {counts.events} = {counts.items} items + {counts.requests} requests + {counts.impressions} "
        f"impressions + {counts.clicks} clicks + {counts.slates} slates; rounds evaluated: {counts.rounds_evaluated} "
        f"of {counts.rounds}.", "",
        f"Logging policy's on-policy CTR (mean logged reward per shown item): **{fmt(on_policy.value)}** "
        f"[{fmt(on_policy.ci_low)}, {fmt(on_policy.ci_high)}], n = {on_policy.n}.", "",
    ]
    if result.sanity is not None:
        verdict = ", ".join(f"{k}: {'covers' if v else 'MISSES'}" for k, v in result.sanity["covers"].items())
        lines += [f"Sanity check — the logging policy `{result.sanity['policy']}` evaluated on its own log: "
                  f"{verdict} the on-policy CTR.", ""]
    lines += ["## Estimates (value [95% interval])", "",
              "Position-level estimates are reward per shown item; slate_* are reward per slate.", "",
              *_estimate_table(result), "", "## Metrics on the policies' own slates", "", *_metric_table(result), "",
              *[f"- {note}" for note in result.notes], "",
              *[f"![{p.stem}]({p.name})" for p in plots], ""]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines))
    return report
