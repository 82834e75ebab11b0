"""The evaluation report: evaluation.json, report.md and two PNG plots.

The report says, per policy, which estimate to read and why (`online.evaluation.assessment`);
an unreliable estimate is never printed as a plain number (its cell reads "unreliable" with the
value in parentheses and its reasons below the table); a replay without matches reads "no
matches"; clipped estimates carry a mark and a note.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from online.evaluation.assessment import (
    READ_ORDER,
    ReliabilityRule,
    Verdict,
    WeightDiagnostics,
    relative_half_width,
)
from online.evaluation.bootstrap import Estimate
from online.evaluation.summary import EvaluationResult, PolicyEvaluation
from slatestream.reports.plots import pyplot

ESTIMATOR_ORDER = ("dr", "snips", "ips", "dm", "replay", "slate_iips", "slate_rips", "slate_sips")
LEARNING_NOTE = ("A learning policy learns along the log, so its value is an average over its learning (early "
                 "rounds with little data included), not the value of its final state; a fixed snapshot's is that "
                 "of one state.")


__all__ = ["relative_half_width", "write_evaluation_report"]


def fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def interval(estimate: Estimate) -> str:
    """"value [low, high]", or "no matches" for a replay that matched nothing."""
    if estimate.name.startswith("replay") and estimate.n == 0:
        return "no matches"
    return f"{fmt(estimate.value)} [{fmt(estimate.ci_low)}, {fmt(estimate.ci_high)}]"


def cell(estimate: Estimate, verdict: Verdict | None) -> str:
    """A table cell: the estimate with its interval when reliable, else 'unreliable (value)'."""
    if estimate.name.startswith("replay") and estimate.n == 0:
        return "no matches"
    mark = " †" if verdict is not None and verdict.clipped_from is not None else ""
    if verdict is None or verdict.reliable:
        return interval(estimate) + mark
    return f"unreliable ({fmt(estimate.value)}){mark}"


def plot_estimates(result: EvaluationResult, path: Path) -> Path:
    """Reliable point estimates with their intervals, one group per policy (unreliable ones
    hollow, without interval), the on-policy CTR as a line."""
    names = [n for n in ESTIMATOR_ORDER if not n.startswith("slate") and any(n in p.estimates for p in
                                                                               result.policies)]
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(max(6.0, 1.6 * len(result.policies) * max(len(names), 1) / 3), 4.5))
    width = 0.8 / max(len(names), 1)
    for j, name in enumerate(names):
        for i, evaluation in enumerate(result.policies):
            estimate, verdict = evaluation.estimates.get(name), evaluation.assessment.verdicts.get(name)
            if estimate is None or math.isnan(estimate.value):
                continue
            x = i + (j - (len(names) - 1) / 2) * width
            colour = f"C{j}"
            if verdict is not None and not verdict.reliable:
                axes.plot([x], [estimate.value], "o", mfc="none", color=colour)
                continue
            error = [[estimate.value - estimate.ci_low], [estimate.ci_high - estimate.value]]
            axes.errorbar([x], [estimate.value], yerr=np.nan_to_num(error), fmt="o", capsize=3, color=colour)
        axes.plot([], [], "o", color=f"C{j}", label=name)
    axes.axhline(result.on_policy.value, color="grey", linestyle="--", label="logged (on-policy) CTR")
    axes.axhspan(result.on_policy.ci_low, result.on_policy.ci_high, color="grey", alpha=0.15)
    axes.set_xticks(range(len(result.policies)), [p.policy for p in result.policies])
    axes.set(ylabel="reward per shown item (CTR)",
             title="Estimates with 95% intervals (hollow: unreliable, see report.md)")
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


def _kind(evaluation: PolicyEvaluation) -> str:
    if evaluation.learning:
        return "learning along the log: an average over its learning"
    if evaluation.frozen_after_learning:
        return (f"fixed after learning on the first {evaluation.evaluated_from} rounds, evaluated on the rest: "
                "the value of that state")
    if evaluation.evaluated_from:
        return f"fixed snapshot, evaluated from round {evaluation.evaluated_from} (when it was taken) on"
    return ("fixed snapshot, on the whole log: biased upward if its state learned from these rounds (give the "
            "time it was taken)")


def _closest(evaluation: PolicyEvaluation) -> str:
    """The first estimate of READ_ORDER whose only fault is its width, shown with its interval
    (sound, but not to the precision target), or ""."""
    for name in READ_ORDER:
        verdict = evaluation.assessment.verdicts.get(name)
        if verdict is not None and verdict.imprecise and len(verdict.reasons) == 1:
            estimate = evaluation.estimates[name]
            return (f" The closest: **{name} = {interval(estimate)}**, sound but ±"
                    f"{relative_half_width(estimate):.0%} wide: enough to rule out values outside its interval, "
                    "not to rank policies closer than that.")
    return ""


def _reading(result: EvaluationResult) -> list[str]:
    lines = ["## Which estimate to read", ""]
    for evaluation in result.policies:
        assessment = evaluation.assessment
        head = f"- **{evaluation.policy}** ({_kind(evaluation)})"
        if assessment.read is None:
            lines.append(f"{head}: no reliable estimate — {assessment.why.removeprefix('no reliable estimate: ')}."
                         + _closest(evaluation))
        else:
            estimate = evaluation.estimates[assessment.read]
            lines.append(f"{head}: read **{assessment.read} = {interval(estimate)}** — {assessment.why}.")
    epsilon = result.settings.get("support_epsilon", 0.0)
    mix = (f" Each policy is evaluated as it would serve, with the support mix (support_epsilon = {epsilon}: that "
           "share of its slates uniformly random), which its value includes." if epsilon else "")
    return [*lines, "", LEARNING_NOTE + mix, ""]


def _estimate_table(result: EvaluationResult) -> tuple[list[str], list[str]]:
    """The table of estimates, and the footnotes (reasons, clipping) below it."""
    names = [n for n in ESTIMATOR_ORDER if any(n in p.estimates for p in result.policies)]
    lines = ["| policy | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    notes: list[str] = []
    for evaluation in result.policies:
        cells = []
        for name in names:
            estimate, verdict = evaluation.estimates.get(name), evaluation.assessment.verdicts.get(name)
            cells.append("—" if estimate is None else cell(estimate, verdict))
            if verdict is not None and verdict.reasons and not (name == "replay" and estimate and estimate.n == 0):
                notes.append(f"- {evaluation.policy} / {name}: " + "; ".join(verdict.reasons) + ".")
            if verdict is not None and verdict.clipped_from is not None:
                notes.append(f"- † {evaluation.policy} / {name}: clipped to the reward range (raw value "
                             f"{fmt(verdict.clipped_from)}).")
        lines.append(f"| {evaluation.policy} | " + " | ".join(cells) + " |")
    return lines, notes


def _diagnostics_table(result: EvaluationResult) -> list[str]:
    """One row per policy and set of weights (IPS, SNIPS and DR share theirs)."""
    lines = ["| policy | estimators | n | effective sample size | largest weight | largest round's share | "
             "mean weight [95%] | support (known in) | at Monte Carlo floor |", "|---|---|---|---|---|---|---|---|---|"]
    for evaluation in result.policies:
        assessment = evaluation.assessment
        support = ("unknown" if assessment.support is None
                   else f"{assessment.support:.1%} ({assessment.support_known:.0%} of rounds)")
        groups: dict[WeightDiagnostics, list[str]] = {}
        for name, found in assessment.diagnostics.items():
            groups.setdefault(found, []).append(name)
        for d, names in groups.items():
            floor = "—" if d.floor_share is None else f"{d.floor_share:.0%}"
            lines.append(f"| {evaluation.policy} | {', '.join(names)} | {d.n:,} | {d.ess:,.1f} | {d.max_weight:.3g} | "
                         f"{d.max_round_share:.1%} | "
                         f"{d.mean_weight:.3f} [{d.mean_low:.3f}, {d.mean_high:.3f}] | {support} | {floor} |")
    gaps = [f"- {e.policy}: DR − DM = {interval(e.assessment.dr_minus_dm)} (DR's correction of the reward model)"
            for e in result.policies if e.assessment.dr_minus_dm is not None]
    return [*lines, "", *gaps]


def _metric_table(result: EvaluationResult) -> list[str]:
    names = list(result.policies[0].metrics)
    lines = ["| policy | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for evaluation in result.policies:
        lines.append(f"| {evaluation.policy} | " + " | ".join(fmt(evaluation.metrics[n], 3) for n in names) + " |")
    return lines


def _header(result: EvaluationResult, description: str, caveats: Sequence[str]) -> list[str]:
    counts, on_policy = result.counts, result.on_policy
    lines = [
        "# slatestream evaluate: counterfactual evaluation on a logged stream", "",
        f"Data: {description}.", "",
        *[f"> **Note.** {caveat}\n" for caveat in caveats],
        "Settings: " + ", ".join(f"{k}={v}" for k, v in result.settings.items()), "",
        f"Events: {counts.events} = {counts.items} items + {counts.requests} requests + {counts.impressions} "
        f"impressions + {counts.clicks} clicks + {counts.slates} slates; rounds evaluated: {counts.rounds_evaluated} "
        f"of {counts.rounds}.", "",
        f"Logging policy's on-policy CTR (mean logged reward per shown item): **{interval(on_policy)}**, "
        f"n = {on_policy.n}.", "",
    ]
    if result.sanity is not None:
        verdict = ", ".join(f"{k}: {'covers' if v else 'MISSES'}" for k, v in result.sanity["covers"].items())
        lines += [f"Sanity check — the logging policy `{result.sanity['policy']}` evaluated on its own log: "
                  f"{verdict} the on-policy CTR.", ""]
    return lines


def _rule_text(rule: ReliabilityRule) -> str:
    return (f"Weights w = pi_e / pi_0 of each weighted estimator. Reliable needs support in >= {rule.min_support:.0%} "
            f"of the rounds where it is known, an effective sample size >= {rule.min_ess:.0f} and >= "
            f"{rule.min_ess_share:.0%} of the observations, no round carrying more than {rule.max_round_share:.0%} of "
            "the total weight, a mean weight near 1 (its expectation under full support) and, for slate_rips / "
            "slate_sips, logged prefix propensities above the Monte Carlo floor; DR is dominated by the reward model "
            "when its weights fail these. DM is read only where a reliable DR shows no significant DR − DM. Every "
            f"estimate also needs an interval within ±{rule.precision:.0%} of its value (`--precision`).")


def write_evaluation_report(result: EvaluationResult, out_dir: Path, description: str,
                            caveats: Sequence[str] = (), extra: dict[str, Any] | None = None) -> Path:
    """Write evaluation.json, estimates.png, ctr_over_log.png and report.md; return report.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"data": description, **(extra or {}), **result.to_dict()}
    (out_dir / "evaluation.json").write_text(json.dumps(payload, indent=2, allow_nan=False))
    plots = [plot_estimates(result, out_dir / "estimates.png"), plot_ctr_over_log(result, out_dir / "ctr_over_log.png")]
    table, footnotes = _estimate_table(result)
    lines = [
        *_header(result, description, caveats), *_reading(result),
        "## Estimates (value [95% interval])", "",
        "Position-level estimates (dr, snips, ips, dm, replay) are reward per shown item; slate_* are reward per "
        "slate. Estimates are clipped to the reward range (†). An unreliable estimate is shown in parentheses, "
        "never as a plain number; why:", "",
        *table, "", *footnotes, "",
        "## Diagnostics", "",
        _rule_text(ReliabilityRule(precision=result.settings.get("precision", ReliabilityRule().precision))), "",
        *_diagnostics_table(result), "",
        "## Metrics on the policies' own slates", "", *_metric_table(result), "",
        *[f"- {note}" for note in result.notes], "",
        *[f"![{p.stem}]({p.name})" for p in plots], "",
    ]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines))
    return report
