"""Which estimates to believe: per policy and estimator the diagnostics, a verdict, and the one
estimate to read.

Diagnostics of an importance-weighted estimator (its weights w = pi_e / pi_0 over the
observations it uses): the effective sample size (sum w)^2 / sum w^2, the largest and the mean
weight (E[w] = 1 under full support: a mean far below 1 means the policy puts mass where the log
has none, or the propensities are wrong), and, for RIPS and SIPS, the share of logged prefix or
joint propensities at the Monte Carlo floor (only the served draw agreed: their inverse is
biased low). Per policy: the share of rounds where the log supports it (`RoundSupport`), and
how far DR sits from DM (DR's correction term, with its interval).

An estimate is unreliable when (reasons listed in `Verdict.reasons`; thresholds in
`ReliabilityRule`):
- its rounds lack support (share < min_support where known), or its mean weight's interval
  lies off 1 by more than mean_weight_tolerance;
- its effective sample size is below min_ess, or below min_ess_share of its observations (the
  evaluated policy sits far from the logger: the estimate rests on a few rounds and its
  bootstrap interval is not to be trusted);
- one round carries more than max_round_share of the total weight (that round alone moves the
  estimate; a resample that misses or repeats it moves the interval);
- RIPS/SIPS: more than max_floor_share of its logged propensities sit at the Monte Carlo floor;
- replay: the log is not (known to be) uniformly random, or it matched fewer than min_matches;
- DR: any of the weight reasons (its correction cannot correct: it is dominated by the
  reward model);
- DM: DR is unreliable (the reward model cannot be checked), or DR - DM is significant (the
  reward model is biased for this policy);
- any estimator not already biased by one of the reasons above (no support, a mean weight off 1,
  replay on a log known not to be uniform, DM with a biased reward model: more rounds would not
  help, so its width is moot and left out): it is imprecise, its interval's half-width over the
  value above `precision` (10% by default: an estimate called reliable is within about that of the
  truth; the reason says how many times the rounds would reach it). `Verdict.imprecise` marks this
  reason, always the last.
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
MIN_ESS_SHARE = 0.01
MAX_ROUND_SHARE = 0.02
MIN_MATCHES = 30
MAX_FLOOR_SHARE = 0.10
MEAN_WEIGHT_TOLERANCE = 0.10
PRECISION = 0.10
READ_ORDER = ("dr", "snips", "ips", "replay")
WEIGHTED = ("ips", "snips", "dr", "slate_iips", "slate_rips", "slate_sips")


@dataclass(frozen=True)
class ReliabilityRule:
    """The thresholds of the verdicts (see the module doc); `precision`: the largest interval
    half-width, as a share of the value, of an estimate called reliable (math.inf: any)."""

    min_support: float = MIN_SUPPORT
    min_ess: float = MIN_ESS
    min_ess_share: float = MIN_ESS_SHARE
    max_round_share: float = MAX_ROUND_SHARE
    min_matches: int = MIN_MATCHES
    max_floor_share: float = MAX_FLOOR_SHARE
    mean_weight_tolerance: float = MEAN_WEIGHT_TOLERANCE
    precision: float = PRECISION

    def __post_init__(self) -> None:
        if not self.precision > 0:
            raise ValueError(f"precision: must be > 0 (math.inf: any interval), got {self.precision}")


@dataclass(frozen=True)
class WeightDiagnostics:
    """n weights: effective sample size, largest and mean weight with the mean's interval;
    max_round_share: the largest share of the total weight one bootstrap unit (round) carries
    (1.0 when every weight is 0); floor_share: share of logged propensities at the Monte Carlo
    floor (RIPS, SIPS; None when unknown or not applicable)."""

    n: int
    ess: float
    max_weight: float
    mean_weight: float
    mean_low: float
    mean_high: float
    max_round_share: float = 0.0
    floor_share: float | None = None

    @property
    def ess_share(self) -> float:
        """The effective sample size over the number of weights (0 without any)."""
        return self.ess / self.n if self.n else 0.0


def largest_unit_share(weights: FloatArray, clusters: npt.ArrayLike | None) -> float:
    """The largest share of sum(weights) (float64[n], >= 0) that one cluster (int[n], e.g. the
    round of each weight; None: each weight its own) carries; 1.0 when the sum is 0."""
    total = float(weights.sum())
    if total <= 0:
        return 1.0
    if clusters is None:
        return float(weights.max()) / total
    _, unit = np.unique(np.asarray(clusters), return_inverse=True)
    return float(np.bincount(unit.ravel(), weights=weights).max()) / total


def weight_diagnostics(weights: FloatArray, clusters: npt.ArrayLike | None, boot: BootArgs,
                       floor_share: float | None = None) -> WeightDiagnostics:
    """Diagnostics of float64[n] weights (clusters: the bootstrap unit of each, e.g. its round)."""
    mean, low, high = bootstrap_ratio(weights, np.ones_like(weights), clusters=clusters, **boot)
    return WeightDiagnostics(int(weights.size), effective_sample_size(weights), float(weights.max()), mean, low,
                             high, largest_unit_share(weights, clusters), floor_share)


def relative_half_width(estimate: Estimate) -> float:
    """Half the interval's width over |value| (inf at 0, NaN without an interval)."""
    if estimate.value == 0:
        return math.inf
    return (estimate.ci_high - estimate.ci_low) / 2 / abs(estimate.value)


@dataclass(frozen=True)
class Verdict:
    """reliable: whether to believe the estimate; reasons: why not (empty when reliable);
    clipped_from: the raw value when it lay outside the reward range; imprecise: its interval
    is wider than the precision target (then the last of the reasons; never set when another
    reason says the estimate is biased)."""

    reliable: bool
    reasons: tuple[str, ...] = ()
    clipped_from: float | None = None
    imprecise: bool = False


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


def _weight_reasons(name: str, diagnostics: WeightDiagnostics | None, support: float | None,
                    rule: ReliabilityRule) -> tuple[list[str], bool]:
    """The reasons against a weighted estimate, and whether one of them says it is biased."""
    reasons: list[str] = []
    if support is not None and support < rule.min_support:
        reasons.append(f"no support in {1 - support:.0%} of rounds (the log never ranked what the policy ranks)")
    if diagnostics is None:
        return reasons, bool(reasons)
    tolerance = rule.mean_weight_tolerance
    if diagnostics.mean_high < 1 - tolerance or diagnostics.mean_low > 1 + tolerance:
        reasons.append(f"mean weight {diagnostics.mean_weight:.2f} [{diagnostics.mean_low:.2f}, "
                       f"{diagnostics.mean_high:.2f}], not 1: mass where the log has none, or wrong propensities")
    biased = bool(reasons)  # no support, or a mean weight off 1
    if diagnostics.ess < rule.min_ess:
        reasons.append(f"effective sample size {diagnostics.ess:.0f} < {rule.min_ess:.0f}: the estimate rests on a "
                       "few rounds")
    elif diagnostics.ess_share < rule.min_ess_share:
        reasons.append(f"effective sample size {diagnostics.ess:,.0f} is {diagnostics.ess_share:.2%} of the "
                       f"{diagnostics.n:,} observations (< {rule.min_ess_share:.0%}): the policy sits far from the "
                       "logger, a few heavy weights carry the estimate")
    if diagnostics.max_round_share > rule.max_round_share:
        reasons.append(f"one round carries {diagnostics.max_round_share:.1%} of the total weight (> "
                       f"{rule.max_round_share:.0%}; largest weight {diagnostics.max_weight:.3g}): that round "
                       "alone moves the estimate")
    if name in ("slate_rips", "slate_sips") and diagnostics.floor_share is not None and (
            diagnostics.floor_share > rule.max_floor_share):
        reasons.append(f"{diagnostics.floor_share:.0%} of logged prefix propensities rest on the served draw alone "
                       "(too few Monte Carlo draws: inverse biased low)")
    return reasons, biased


def _replay_reasons(estimate: Estimate, facts: LogFacts, rule: ReliabilityRule) -> list[str]:
    reasons = []
    if facts.uniform is not True:
        reasons.append("the log is not uniformly random: replay is biased" if facts.uniform is False
                       else "the log is not known to be uniformly random: replay is unbiased only then")
    if estimate.n == 0:
        reasons.append("no matches")
    elif estimate.n < rule.min_matches:
        reasons.append(f"{estimate.n} matches < {rule.min_matches}")
    return reasons


def _precision_reason(estimate: Estimate, rule: ReliabilityRule) -> str | None:
    """Why `estimate` (clipped) is too imprecise for `rule.precision`, or None when it is not."""
    width = relative_half_width(estimate)
    if width <= rule.precision:
        return None
    target = f"the precision target ±{rule.precision:.0%}"
    if math.isnan(width):
        return f"no interval: its precision is unknown ({target})"
    if math.isinf(width):
        return f"its value is 0: no interval is within {target} of it"
    return (f"imprecise: its interval spans ±{width:.0%} of the value, wider than {target} (about "
            f"{(width / rule.precision) ** 2:.1f}x the rounds would reach it)")


def _clip(estimate: Estimate, top: float) -> tuple[Estimate, float | None]:
    if not math.isfinite(estimate.value):
        return estimate, None
    value = min(max(estimate.value, 0.0), top)
    low = estimate.ci_low if math.isnan(estimate.ci_low) else min(max(estimate.ci_low, 0.0), top)
    high = estimate.ci_high if math.isnan(estimate.ci_high) else min(max(estimate.ci_high, 0.0), top)
    raw = None if value == estimate.value else estimate.value
    return replace(estimate, value=value, ci_low=low, ci_high=high), raw


def _verdict(reasons: list[str], estimate: Estimate, raw: float | None, rule: ReliabilityRule,
             biased: bool = False) -> Verdict:
    """The verdict of `estimate` (clipped) with the structural `reasons`, plus its precision
    unless one of them says the estimate is `biased` (then its width is moot)."""
    imprecise = _precision_reason(estimate, rule) if math.isfinite(estimate.value) and not biased else None
    if imprecise is not None:
        reasons = [*reasons, imprecise]
    return Verdict(not reasons, tuple(reasons), raw, imprecise is not None)


def assess(estimates: dict[str, Estimate], diagnostics: dict[str, WeightDiagnostics], support: tuple[float | None,
           float], dr_minus_dm: Estimate | None, facts: LogFacts,
           rule: ReliabilityRule | None = None) -> tuple[dict[str, Estimate], Assessment]:
    """(estimates clipped to the reward range, the policy's Assessment) under `rule` (default:
    `ReliabilityRule()`); see the module doc."""
    rule = rule or ReliabilityRule()
    verdicts: dict[str, Verdict] = {}
    clipped: dict[str, Estimate] = {}
    clipped_from: dict[str, float | None] = {}
    for name, estimate in estimates.items():
        top = facts.r_max * (facts.slate_length if name.startswith("slate_") else 1)
        clipped[name], clipped_from[name] = _clip(estimate, top)
        if name == "replay":
            reasons, biased = _replay_reasons(estimate, facts, rule), facts.uniform is False
        elif name == "dm":
            continue  # after DR, which checks it
        else:
            reasons, biased = _weight_reasons(name, diagnostics.get(name), support[0], rule)
            if name == "dr" and reasons:
                reasons.append("dominated by the reward model: its correction rests on these weights")
        verdicts[name] = _verdict(reasons, clipped[name], clipped_from[name], rule, biased)
    if "dm" in estimates:
        dm_reasons, biased = _dm_reasons(verdicts.get("dr"), dr_minus_dm)
        verdicts["dm"] = _verdict(dm_reasons, clipped["dm"], clipped_from.get("dm"), rule, biased)
    read = next((name for name in READ_ORDER if name in verdicts and verdicts[name].reliable), None)
    assessment = Assessment(support[0], support[1], diagnostics, dr_minus_dm, verdicts, read,
                            _why(read, verdicts, diagnostics, support, dr_minus_dm))
    return clipped, assessment


def _dm_reasons(dr: Verdict | None, gap: Estimate | None) -> tuple[list[str], bool]:
    """DM's reasons besides its precision (no reliable DR to check the reward model with, or a
    DR - DM that excludes 0), and whether they say it is biased (the latter)."""
    if dr is None or not dr.reliable or gap is None:
        return ["the reward model alone: unchecked, as no reliable DR tests it"], False
    if not gap.ci_low <= 0.0 <= gap.ci_high:
        return [f"the reward model is biased here: DR - DM = {gap.value:+.4f} [{gap.ci_low:+.4f}, "
                f"{gap.ci_high:+.4f}] excludes 0"], True
    return [], False


def _why(read: str | None, verdicts: dict[str, Verdict], diagnostics: dict[str, WeightDiagnostics],
         support: tuple[float | None, float], gap: Estimate | None) -> str:
    if read is None:
        first = next((f"{name}: {v.reasons[0]}" for name in READ_ORDER if name in verdicts
                      for v in [verdicts[name]] if v.reasons), "no estimate applies to this log")
        return f"no reliable estimate: {first}"
    if read == "replay":
        return "the log is uniformly random and the weighted estimates are unreliable; replay is unbiased here"
    parts = []
    if support[0] is not None:
        parts.append(f"support in {support[0]:.0%} of rounds (known in {support[1]:.0%})")
    found = diagnostics.get(read)
    if found is not None:
        parts.append(f"effective sample size {found.ess:,.0f} of {found.n:,} observations, largest weight "
                     f"{found.max_weight:.3g} (largest round {found.max_round_share:.1%} of the weight), mean weight "
                     f"{found.mean_weight:.2f}")
    if read == "dr" and gap is not None:
        parts.append(f"DR - DM {gap.value:+.4f} [{gap.ci_low:+.4f}, {gap.ci_high:+.4f}]")
    label = {"dr": "DR (unbiased with these weights, the lowest variance)", "snips": "SNIPS", "ips": "IPS"}[read]
    return f"{label}: " + "; ".join(parts)
