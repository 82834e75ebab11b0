"""Off-policy estimators over per-round arrays: replay, IPS, SNIPS and doubly robust.

Notation: n logged rounds; in round i the logging policy pi_0 took action a_i with
propensity pi_0(a_i|x_i) ("pscores", in (0, 1]) and observed reward r_i; the evaluated
policy pi_e would take a_i with probability pi_e(a_i|x_i) ("eval_probs", in [0, 1]).
The importance weight is w_i = pi_e(a_i|x_i) / pi_0(a_i|x_i).

Position-level evaluation of slates uses these same functions with one observation per
(round, position): flatten the [n, L] arrays and pass `clusters` = the round index of each
observation so the bootstrap resamples whole slates. The point estimate is then the
value per position-impression (e.g. CTR per shown item). Slate-level estimators (per-slate
sums of rewards) live in `online.evaluation.slate_estimators`.

Every estimator returns an `Estimate` with a percentile bootstrap interval computed from
the `rng` passed in (`n_bootstrap` resamples, `confidence` level); replay, IPS and SNIPS widen
it by default to hold a Wilson score interval (`widened`), which does not collapse when the
sample holds few rewards.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Literal

import numpy as np
import numpy.typing as npt

import online.evaluation._checks as _checks
from online.evaluation.bootstrap import Estimate, bootstrap_ratio, check_bootstrap_args

FloatArray = npt.NDArray[np.float64]


def ratio_estimate(
    name: str,
    numerator: FloatArray,
    denominator: FloatArray,
    n: int,
    *,
    rng: np.random.Generator,
    n_bootstrap: int,
    confidence: float,
    clusters: npt.ArrayLike | None,
) -> Estimate:
    """Estimate(name, sum(numerator) / sum(denominator)) with its bootstrap interval."""
    value, low, high = bootstrap_ratio(
        numerator, denominator, rng=rng, n_bootstrap=n_bootstrap, confidence=confidence, clusters=clusters
    )
    return Estimate(name=name, value=value, ci_low=low, ci_high=high, n=n)


Interval = Literal["wilson", "percentile"]
"""How an estimator's interval is made: the percentile bootstrap, or ("wilson") the percentile
bootstrap widened to hold a Wilson score interval (see `widened`)."""


def widened(estimate: Estimate, share: float, n: float, scale: float, confidence: float, interval: Interval,
            factor: float = 1.0) -> Estimate:
    """`estimate` with its interval widened to hold factor * scale * the Wilson interval of
    `share` (in [0, 1]) over `n` effective trials: the binomial variance at the estimate, which
    a percentile bootstrap misses when the sample holds few rewards (it then collapses to
    [0, 0] with no click at all). Unchanged for interval="percentile" or a NaN estimate."""
    if interval not in ("wilson", "percentile"):
        raise ValueError(f"interval: must be 'wilson' or 'percentile', got {interval!r}")
    if interval == "percentile" or not np.isfinite(estimate.value) or n <= 0:
        return estimate
    low, high = wilson_interval(share, n, confidence)
    return Estimate(estimate.name, estimate.value, float(np.nanmin([estimate.ci_low, factor * scale * low])),
                    float(np.nanmax([estimate.ci_high, factor * scale * high])), estimate.n)


def _scale(reward: FloatArray, reward_max: float | None) -> float:
    return max(1.0, float(reward.max())) if reward_max is None else float(reward_max)


def _weights(
    rewards: npt.ArrayLike, pscores: npt.ArrayLike, eval_probs: npt.ArrayLike, clip: float | None
) -> tuple[FloatArray, FloatArray]:
    reward = _checks.floats("rewards", rewards, ndim=1)
    pscore = _checks.propensities("pscores", _checks.floats("pscores", pscores, ndim=1, shape=reward.shape))
    prob = _checks.probabilities("eval_probs", _checks.floats("eval_probs", eval_probs, ndim=1, shape=reward.shape))
    weight = np.minimum(prob / pscore, _checks.clip_value(clip))
    return reward, weight


def replay(
    rewards: npt.ArrayLike,
    logged_actions: npt.ArrayLike,
    evaluated_actions: npt.ArrayLike,
    *,
    rng: np.random.Generator,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    interval: Interval = "wilson",
) -> Estimate:
    """Replay (Li et al. 2011): mean reward over the rounds where pi_e chose the logged action.

    rewards: float[n]; logged_actions, evaluated_actions: int[n] (action indices; the
    evaluated policy's choice in round i's context). Unbiased when the log comes from a
    uniformly random logging policy. Estimate.n is the number of matched rounds; value and
    interval are NaN when there is none. interval: "wilson" widens the bootstrap to the Wilson
    interval over the matches (`widened`; rewards scaled by max(1, max reward)).
    """
    check_bootstrap_args(n_bootstrap, confidence)
    reward = _checks.floats("rewards", rewards, ndim=1)
    logged = _checks.integers("logged_actions", logged_actions, ndim=1, shape=reward.shape)
    chosen = _checks.integers("evaluated_actions", evaluated_actions, ndim=1, shape=reward.shape)
    match = (logged == chosen).astype(np.float64)
    estimate = ratio_estimate(
        "replay", match * reward, match, int(match.sum()),
        rng=rng, n_bootstrap=n_bootstrap, confidence=confidence, clusters=None,
    )
    scale = _scale(reward, None)
    return widened(estimate, estimate.value / scale, estimate.n, scale, confidence, interval)


def replay_positions(
    rewards: npt.ArrayLike,
    logged_items: npt.ArrayLike,
    logged_positions: npt.ArrayLike,
    evaluated_slates: npt.ArrayLike,
    *,
    rng: np.random.Generator,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    clusters: npt.ArrayLike | None = None,
    interval: Interval = "wilson",
) -> Estimate:
    """Position-level replay: mean reward over logged (item, position) pairs that the
    evaluated slate reproduces (same item at the same position).

    rewards: float[m], one per logged impression; logged_items: int[m] item indices (>= 0);
    logged_positions: int[m], 0 = top; evaluated_slates: int[m, L], row j = the slate the
    evaluated policy builds for observation j's request (pad short slates with -1; a
    logged position >= L never matches). clusters: optional request id per observation
    (bootstrap resamples requests). Estimate.n is the number of matched impressions.
    interval: as for `replay`.
    """
    check_bootstrap_args(n_bootstrap, confidence)
    reward = _checks.floats("rewards", rewards, ndim=1)
    items = _checks.integers("logged_items", logged_items, ndim=1, shape=reward.shape)
    positions = _checks.integers("logged_positions", logged_positions, ndim=1, shape=reward.shape)
    slates = _checks.integers("evaluated_slates", evaluated_slates, ndim=2)
    if slates.shape[0] != reward.size:
        raise ValueError(f"evaluated_slates: must have {reward.size} rows, got shape {slates.shape}")
    if items.min() < 0:
        raise ValueError("logged_items: must be >= 0 (-1 is reserved for slate padding)")
    if positions.min() < 0:
        raise ValueError("logged_positions: must be >= 0")
    inside = positions < slates.shape[1]
    at_position = slates[np.arange(reward.size), np.where(inside, positions, 0)]
    match = (inside & (at_position == items)).astype(np.float64)
    estimate = ratio_estimate(
        "replay_positions", match * reward, match, int(match.sum()),
        rng=rng, n_bootstrap=n_bootstrap, confidence=confidence, clusters=clusters,
    )
    scale = _scale(reward, None)
    return widened(estimate, estimate.value / scale, estimate.n, scale, confidence, interval)


def ips(
    rewards: npt.ArrayLike,
    pscores: npt.ArrayLike,
    eval_probs: npt.ArrayLike,
    *,
    rng: np.random.Generator,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    clip: float | None = None,
    clusters: npt.ArrayLike | None = None,
    interval: Interval = "wilson",
    reward_max: float | None = None,
) -> Estimate:
    """Inverse propensity scoring: mean over rounds of w_i * r_i.

    rewards, pscores (in (0, 1]), eval_probs (in [0, 1]): float[n]. clip: cap on the
    weights (clipped IPS; biased towards 0, lower variance). clusters: optional label[n]
    for position-level use (see the module docstring). With eval_probs == pscores the
    estimate is exactly the mean logged reward. interval: "wilson" widens the bootstrap to
    mean(w) times SNIPS's Wilson interval (IPS = mean(w) * SNIPS; `widened`, `snips`).
    """
    check_bootstrap_args(n_bootstrap, confidence)
    reward, weight = _weights(rewards, pscores, eval_probs, clip)
    estimate = ratio_estimate(
        "ips", weight * reward, np.ones_like(reward), reward.size,
        rng=rng, n_bootstrap=n_bootstrap, confidence=confidence, clusters=clusters,
    )
    total, scale = float(weight.sum()), _scale(reward, reward_max)
    if total <= 0:
        return estimate
    share = float((weight * reward).sum()) / total / scale
    return widened(estimate, share, effective_sample_size(weight), scale, confidence, interval, total / reward.size)


def snips(
    rewards: npt.ArrayLike,
    pscores: npt.ArrayLike,
    eval_probs: npt.ArrayLike,
    *,
    rng: np.random.Generator,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    clusters: npt.ArrayLike | None = None,
    interval: Interval = "wilson",
    reward_max: float | None = None,
) -> Estimate:
    """Self-normalised IPS: sum(w_i * r_i) / sum(w_i).

    Shapes as for `ips`. Consistent, slightly biased, bounded by the reward range.
    NaN when every weight is 0 (pi_e never takes a logged action).

    interval="percentile": the percentile bootstrap, which undercovers when the clicks of
    high-weight rounds are rare (90% for a 95% interval at n = 1,000 in the issue; it can only
    see the variance the sample shows). "wilson" (default) widens it to also hold the Wilson
    score interval of a [0, reward_max] reward at the effective sample size
    (sum w)^2 / sum w^2 — the binomial variance at the estimate, which does not vanish when
    few clicks were drawn; the bootstrap side keeps the variance Wilson misses when
    high-weight items click more than the average. reward_max: default max(1, max reward).
    Coverage on synthetic logs: tests/online/evaluation/test_intervals.py.
    """
    check_bootstrap_args(n_bootstrap, confidence)
    reward, weight = _weights(rewards, pscores, eval_probs, None)
    estimate = ratio_estimate(
        "snips", weight * reward, weight, reward.size,
        rng=rng, n_bootstrap=n_bootstrap, confidence=confidence, clusters=clusters,
    )
    scale = _scale(reward, reward_max)
    return widened(estimate, estimate.value / scale, effective_sample_size(weight), scale, confidence, interval)


def effective_sample_size(weights: FloatArray) -> float:
    """(sum w)^2 / sum w^2 of float64[n] weights >= 0 (0 when they all are)."""
    squares = float((weights * weights).sum())
    return float(weights.sum()) ** 2 / squares if squares > 0 else 0.0


def wilson_interval(share: float, n: float, confidence: float) -> tuple[float, float]:
    """The Wilson score interval of a proportion `share` (clipped to [0, 1]) observed over `n`
    (possibly fractional, > 0) trials; (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = min(max(share, 0.0), 1.0)
    z = NormalDist().inv_cdf(1.0 - (1.0 - confidence) / 2.0)
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2.0 * n)) / denominator
    half = z * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def doubly_robust(
    rewards: npt.ArrayLike,
    pscores: npt.ArrayLike,
    eval_probs: npt.ArrayLike,
    q_hat_logged: npt.ArrayLike,
    q_hat_expected: npt.ArrayLike,
    *,
    rng: np.random.Generator,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    clip: float | None = None,
    clusters: npt.ArrayLike | None = None,
    interval: Interval = "wilson",
    reward_max: float | None = None,
) -> Estimate:
    """Doubly robust: mean over rounds of q_hat(x_i, pi_e) + w_i * (r_i - q_hat(x_i, a_i)).

    rewards, pscores, eval_probs: float[n] as for `ips`; q_hat_logged: float[n], the
    reward model's prediction for the logged action; q_hat_expected: float[n], the
    model's expected reward under pi_e's action distribution in round i,
    sum_a pi_e(a|x_i) q_hat(x_i, a). Unbiased if either the propensities or the reward
    model are correct. clip caps the weights as in `ips`. interval: "wilson" widens the
    bootstrap to hold, around the estimate, the half-widths of IPS's Wilson interval (the
    correction sum w (r - q) is as uncertain as sum w r when the model is weak, and the bootstrap
    misses the clicks high-weight rounds did not draw: `ips`, `widened`).
    """
    check_bootstrap_args(n_bootstrap, confidence)
    reward, weight = _weights(rewards, pscores, eval_probs, clip)
    q_logged = _checks.floats("q_hat_logged", q_hat_logged, ndim=1, shape=reward.shape)
    q_expected = _checks.floats("q_hat_expected", q_hat_expected, ndim=1, shape=reward.shape)
    terms = q_expected + weight * (reward - q_logged)
    estimate = ratio_estimate(
        "dr", terms, np.ones_like(reward), reward.size,
        rng=rng, n_bootstrap=n_bootstrap, confidence=confidence, clusters=clusters,
    )
    total, scale = float(weight.sum()), _scale(reward, reward_max)
    if interval == "percentile" or total <= 0 or not np.isfinite(estimate.value):
        return widened(estimate, 0.0, 0.0, scale, confidence, interval)  # validates `interval`
    share = float((weight * reward).sum()) / total / scale
    low, high = wilson_interval(share, effective_sample_size(weight), confidence)
    mean_weight = total / reward.size
    below, above = mean_weight * scale * (share - low), mean_weight * scale * (high - share)
    return Estimate("dr", estimate.value, float(np.nanmin([estimate.ci_low, estimate.value - below])),
                    float(np.nanmax([estimate.ci_high, estimate.value + above])), estimate.n)
