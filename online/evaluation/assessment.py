"""Which estimates to believe: per policy and estimator the diagnostics, a verdict, and the one
estimate to read.

Diagnostics of an importance-weighted estimator (its weights w = pi_e / pi_0 over the
observations it uses): the effective sample size (sum w)^2 / sum w^2, the largest and the mean
weight (E[w] = 1 under full support: a mean far below 1 means the policy puts mass where the log
has none, or the propensities are wrong), and, for RIPS and SIPS, the share of logged prefix or
joint propensities at the Monte Carlo floor (only the served draw agreed: their inverse is
biased low). Per policy: the share of rounds where the log supports it (`RoundSupport`), and
how far DR sits from DM (DR's correction term, with its interval).

An estimate is unreliable when (reasons listed in `Verdict.reasons`):
- its rounds lack support (share < MIN_SUPPORT where known), or its mean weight's interval
  lies off 1 by more than MEAN_WEIGHT_TOLERANCE;
- its effective sample size is below MIN_ESS (its interval then rests on a few rounds);
- RIPS/SIPS: more than MAX_FLOOR_SHARE of its logged propensities sit at the Monte Carlo floor;
- replay: the log is not (known to be) uniformly random, or it matched fewer than MIN_MATCHES;
- DR: any of the weight reasons (its correction cannot correct: it is dominated by the
  reward model);
- DM: DR is unreliable (the reward model cannot be checked), or DR - DM is significant (the
  reward model is biased for this policy).
Estimates are clipped to the reward range (per shown item [0, r_max], per slate [0, L r_max]);
`Verdict.clipped_from` keeps the raw value. The estimate to read is the first reliable one of
DR, SNIPS, IPS, replay (DR: unbiased with the lowest variance when the weights hold).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from online.evaluation.bootstrap import BootArgs, Estimate, bootstrap_ratio
from online.evaluation.estimators import effective_sample_size

FloatArray = npt.NDArray[np.float64]

MIN_SUPPORT = 0.99
MIN_ESS = 30.0
MIN_MATCHES = 30
MAX_FLOOR_SHARE = 0.10
MEAN_WEIGHT_TOLERANCE = 0.10
READ_ORDER = ("dr", "snips", "ips", "replay")
WEIGHTED = ("ips", "snips", "dr", "slate_iips", "slate_rips", "slate_sips")


@dataclass(frozen=True)
class WeightDiagnostics:
    """n weights: effective sample size, largest and mean weight with the mean's interval;
    floor_share: share of logged propensities at the Monte Carlo floor (RIPS, SIPS; None when
    unknown or not applicable)."""

    n: int
    ess: float
    max_weight: float
    mean_weight: float
    mean_low: float
    mean_high: float
    floor_share: float | None = None


def weight_diagnostics(weights: FloatArray, clusters: npt.ArrayLike | None, boot: BootArgs,
                       floor_share: float | None = None) -> WeightDiagnostics:
    """Diagnostics of float64[n] weights (clusters: the bootstrap unit of each, e.g. its round)."""
    mean, low, high = bootstrap_ratio(weights, np.ones_like(weights), clusters=clusters, **boot)
    return WeightDiagnostics(int(weights.size), effective_sample_size(weights), float(weights.max()), mean, low,
                             high, floor_share)


@dataclass(frozen=True)
class Verdict:
    """reliable: whether to believe the estimate; reasons: why not (empty when reliable);
    clipped_from: the raw value when it lay outside the reward range."""

    reliable: bool
    reasons: tuple[str, ...] = ()
    clipped_from: float | None = None


@dataclass(frozen=True)
class Assessment:
    """support: share of rounds whose log supports the policy, over the `support_known` share
    of rounds where that is known (None: nowhere); diagnostics per weighted estimator;
    dr_minus_dm: DR's correction term (DR - DM under the same reward model); verdicts per
    estimator; read: the estimate to read (None: none is reliable) and why."""

    support: float | None
    support_known: float
    diagnostics: dict[str, WeightDiagnostics]
    dr_minus_dm: Estimate | None
    verdicts: dict[str, Verdict]
    read: str | None
    why: str
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LogFacts:
    """What the whole log says: uniform (True, False, None = unknown), r_max the reward range's
    top, slate_length the longest logged slate."""

    uniform: bool | None
    r_max: float
    slate_length: int


def _weight_reasons(name: str, diagnostics: WeightDiagnostics | None, support: float | None) -> list[str]:
    reasons: list[str] = []
    if support is not None and support < MIN_SUPPORT:
        reasons.append(f"no support in {1 - support:.0%} of rounds (the log never ranked what the policy ranks)")
    if diagnostics is None:
        return reasons
    if diagnostics.mean_high < 1 - MEAN_WEIGHT_TOLERANCE or diagnostics.mean_low > 1 + MEAN_WEIGHT_TOLERANCE:
        reasons.append(f"mean weight {diagnostics.mean_weight:.2f} [{diagnostics.mean_low:.2f}, "
                       f"{diagnostics.mean_high:.2f}], not 1: mass where the log has none, or wrong propensities")
    if diagnostics.ess < MIN_ESS:
        reasons.append(f"effective sample size {diagnostics.ess:.0f} < {MIN_ESS:.0f}: the estimate rests on a few "
                       "rounds")
    if name in ("slate_rips", "slate_sips") and diagnostics.floor_share is not None and (
            diagnostics.floor_share > MAX_FLOOR_SHARE):
        reasons.append(f"{diagnostics.floor_share:.0%} of logged prefix propensities rest on the served draw alone "
                       "(too few Monte Carlo draws: inverse biased low)")
    return reasons


def _replay_reasons(estimate: Estimate, facts: LogFacts) -> list[str]:
    reasons = []
    if facts.uniform is not True:
        reasons.append("the log is not uniformly random: replay is biased" if facts.uniform is False
                       else "the log is not known to be uniformly random: replay is unbiased only then")
    if estimate.n == 0:
        reasons.append("no matches")
    elif estimate.n < MIN_MATCHES:
        reasons.append(f"{estimate.n} matches < {MIN_MATCHES}")
    return reasons


def _clip(estimate: Estimate, top: float) -> tuple[Estimate, float | None]:
    if not math.isfinite(estimate.value):
        return estimate, None
    value = min(max(estimate.value, 0.0), top)
    low = estimate.ci_low if math.isnan(estimate.ci_low) else min(max(estimate.ci_low, 0.0), top)
    high = estimate.ci_high if math.isnan(estimate.ci_high) else min(max(estimate.ci_high, 0.0), top)
    raw = None if value == estimate.value else estimate.value
    return replace(estimate, value=value, ci_low=low, ci_high=high), raw


def assess(estimates: dict[str, Estimate], diagnostics: dict[str, WeightDiagnostics], support: tuple[float | None,
           float], dr_minus_dm: Estimate | None, facts: LogFacts) -> tuple[dict[str, Estimate], Assessment]:
    """(estimates clipped to the reward range, the policy's Assessment); see the module doc."""
    verdicts: dict[str, Verdict] = {}
    clipped: dict[str, Estimate] = {}
    for name, estimate in estimates.items():
        top = facts.r_max * (facts.slate_length if name.startswith("slate_") else 1)
        clipped[name], raw = _clip(estimate, top)
        if name == "replay":
            reasons = _replay_reasons(estimate, facts)
        elif name == "dm":
            reasons = []
        else:
            reasons = _weight_reasons(name, diagnostics.get(name), support[0])
            if name == "dr" and reasons:
                reasons.append("dominated by the reward model: its correction rests on these weights")
        verdicts[name] = Verdict(not reasons, tuple(reasons), raw)
    if "dm" in estimates:
        verdicts["dm"] = _dm_verdict(verdicts.get("dr"), dr_minus_dm, verdicts["dm"].clipped_from)
    read = next((name for name in READ_ORDER if name in verdicts and verdicts[name].reliable), None)
    assessment = Assessment(support[0], support[1], diagnostics, dr_minus_dm, verdicts, read,
                            _why(read, verdicts, diagnostics, support, dr_minus_dm))
    return clipped, assessment


def _dm_verdict(dr: Verdict | None, gap: Estimate | None, raw: float | None) -> Verdict:
    if dr is None or not dr.reliable or gap is None:
        return Verdict(False, ("the reward model alone: unchecked, as no reliable DR tests it",), raw)
    if not gap.ci_low <= 0.0 <= gap.ci_high:
        return Verdict(False, (f"the reward model is biased here: DR - DM = {gap.value:+.4f} "
                               f"[{gap.ci_low:+.4f}, {gap.ci_high:+.4f}] excludes 0",), raw)
    return Verdict(True, (), raw)


def _why(read: str | None, verdicts: dict[str, Verdict], diagnostics: dict[str, WeightDiagnostics],
         support: tuple[float | None, float], gap: Estimate | None) -> str:
    if read is None:
        first = next((v.reasons[0] for name in READ_ORDER if name in verdicts for v in [verdicts[name]] if v.reasons),
                     "no estimate applies to this log")
        return f"no reliable estimate: {first}"
    if read == "replay":
        return "the log is uniformly random and the weighted estimates are unreliable; replay is unbiased here"
    parts = []
    if support[0] is not None:
        parts.append(f"support in {support[0]:.0%} of rounds (known in {support[1]:.0%})")
    found = diagnostics.get(read)
    if found is not None:
        parts.append(f"effective sample size {found.ess:,.0f} of {found.n:,} observations, largest weight "
                     f"{found.max_weight:.3g}, mean weight {found.mean_weight:.2f}")
    if read == "dr" and gap is not None:
        parts.append(f"DR - DM {gap.value:+.4f} [{gap.ci_low:+.4f}, {gap.ci_high:+.4f}]")
    label = {"dr": "DR (unbiased with these weights, the lowest variance)", "snips": "SNIPS", "ips": "IPS"}[read]
    return f"{label}: " + "; ".join(parts)
