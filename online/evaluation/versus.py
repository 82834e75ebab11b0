"""A shadow policy against the served one over the same rounds: the paired difference of their
values with its interval, and a verdict an operator can act on (docs/worker.md, "Shadow policies").

Per shown item i with a logging propensity, the shadow's doubly robust term is
dr_i = q_expected_i + w_i (r_i - q_logged_i) and the served policy's on-policy term is its reward
r_i, so the difference of the two values is the mean of d_i = dr_i - r_i over the same items:

    d_i = (q_expected_i - q_logged_i) + (w_i - 1) (r_i - q_logged_i)

Paired over the same rounds, the clicks both sides share cancel: a shadow close to the served
policy (w near 1) gets a tight interval, where two separate intervals would overlap. The interval
is the percentile bootstrap over rounds, widened to hold a binomial floor (the clicks that
high-weight items did not happen to draw: z * sqrt(sum (w_i - 1)^2 p (1 - p)) / n, p the window's
click share), as `estimators.widened` does for one value.

Verdict (`Comparison.verdict`), at the interval's confidence:
- "unreliable": DR's weights fail the reliability rule (support, mean weight, effective sample
  size, a heavy round: `assessment`); the difference rests on too few rounds to be read;
- "better" / "worse": the interval lies above / below 0 by more than `min_difference` of the
  served value (1% by default: see `MIN_DIFFERENCE`);
- "tied": it holds 0 and lies within ±precision of the served value (no difference that large);
- "undecided": it holds 0 and is wider; `rounds_needed` says about how many times the rounds
  would decide it (the half-width shrinks as 1/sqrt(rounds)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np
import numpy.typing as npt

from online.evaluation.assessment import ReliabilityRule, Verdict
from online.evaluation.bootstrap import BootArgs, Estimate, bootstrap_ratio

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Call = Literal["better", "worse", "tied", "undecided", "unreliable"]
MIN_DIFFERENCE = 0.01
"""The share of the served value by which a difference's interval must clear 0 to be called. A
shadow identical to the served policy is centred on 0 and its interval holds 0 at the confidence's
rate; the margin keeps the few windows whose interval misses 0 by chance (3 of 40 identical uniform
shadows, each by at most 0.1% of the served value) from being called (docs/worker.md)."""


@dataclass(frozen=True)
class Comparison:
    """difference: the shadow's DR value minus the served policy's on-policy value (reward per
    shown item) with its interval, over `difference.n` shown items; served: the served value over
    the same items; verdict and reason (see the module doc); rounds_needed: for "undecided", about
    how many times the window's rounds would bring the interval off 0 or within the precision
    (None otherwise)."""

    difference: Estimate
    served: float
    verdict: Call
    reason: str
    rounds_needed: float | None = None

    @property
    def relative(self) -> tuple[float, float, float]:
        """(difference, ci_low, ci_high) as shares of the served value (NaN when it is 0)."""
        scale = self.served if self.served > 0 else math.nan
        d = self.difference
        return d.value / scale, d.ci_low / scale, d.ci_high / scale


def paired_difference(rewards: FloatArray, weights: FloatArray, q_logged: FloatArray, q_expected: FloatArray,
                      clusters: IntArray, boot: BootArgs, reward_max: float = 1.0) -> Estimate:
    """The shadow's DR minus the on-policy value over float64[n] per-item rewards, weights
    (pi_e / pi_0), reward-model predictions q_logged and q_expected, clusters int64[n] (the round
    of each item: the bootstrap unit); see the module doc for the interval."""
    terms = q_expected - q_logged + (weights - 1.0) * (rewards - q_logged)
    value, low, high = bootstrap_ratio(terms, np.ones_like(terms), clusters=clusters, **boot)
    if not math.isfinite(value) or terms.size == 0:
        return Estimate("dr_minus_served", value, low, high, int(terms.size))
    share = min(max(float(rewards.mean()) / reward_max, 0.0), 1.0)
    z = NormalDist().inv_cdf(1.0 - (1.0 - boot["confidence"]) / 2.0)
    floor = z * reward_max * math.sqrt(float(((weights - 1.0) ** 2).sum()) * share * (1.0 - share)) / terms.size
    return Estimate("dr_minus_served", value, float(np.nanmin([low, value - floor])),
                    float(np.nanmax([high, value + floor])), int(terms.size))


def judge(difference: Estimate, served: float, dr: Verdict | None, rule: ReliabilityRule,
          min_difference: float = MIN_DIFFERENCE) -> Comparison:
    """The verdict on `difference` (`paired_difference`) against the served value `served`, given
    DR's verdict `dr` (its reasons other than precision disqualify), `rule.precision` (the
    half-width, as a share of the served value, within which a difference counts as none) and
    `min_difference` (the share of the served value an interval must clear to call a side)."""
    structural = () if dr is None else dr.reasons[: len(dr.reasons) - dr.imprecise]
    if dr is None or structural:
        why = structural[0] if structural else "no DR estimate"
        return Comparison(difference, served, "unreliable", f"not comparable yet: {why}")
    value, low, high = difference.value, difference.ci_low, difference.ci_high
    if not (math.isfinite(low) and math.isfinite(high)):
        return Comparison(difference, served, "unreliable", "no interval on the difference")
    clear, margin = min_difference * served, rule.precision * served
    beyond = f"more than {min_difference:.0%} of the served value"
    if low > clear:
        return Comparison(difference, served, "better", f"its interval on the difference lies above 0 by {beyond}")
    if high < -clear:
        return Comparison(difference, served, "worse", f"its interval on the difference lies below 0 by {beyond}")
    if -margin <= low and high <= margin:
        return Comparison(difference, served, "tied", f"no difference beyond ±{rule.precision:.0%} of the served value")
    half = (high - low) / 2
    needed = [(half / margin) ** 2 if margin > 0 else math.inf]
    if abs(value) > clear:
        needed.append((half / (abs(value) - clear)) ** 2)  # to clear the margin, were the difference to stay
    rounds = min(needed)
    return Comparison(difference, served, "undecided",
                      f"its interval holds 0 (or too little to call); about {rounds:.1f}x the rounds would decide it",
                      rounds)
