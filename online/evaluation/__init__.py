"""Counterfactual (off-policy) evaluation: estimators with bootstrap intervals, and metrics.

Everything here is pure numpy over per-round arrays; the evaluation driver turns logs and
policies into those arrays. `estimators` holds replay, IPS, SNIPS, DR and the slate-level
estimators; `bootstrap` the vectorised percentile bootstrap behind their intervals;
`metrics` ranking, beyond-accuracy,
exposure-fairness and calibration metrics.
"""

from online.evaluation.bootstrap import Estimate, bootstrap_ratio
from online.evaluation.estimators import (
    doubly_robust,
    ips,
    replay,
    replay_positions,
    snips,
)
from online.evaluation.slate_estimators import (
    slate_cascade_ips,
    slate_independent_ips,
    slate_propensity,
    slate_standard_ips,
)

__all__ = [
    "Estimate",
    "bootstrap_ratio",
    "doubly_robust",
    "ips",
    "replay",
    "replay_positions",
    "slate_cascade_ips",
    "slate_independent_ips",
    "slate_propensity",
    "slate_standard_ips",
    "snips",
]
