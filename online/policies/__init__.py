"""Ranking policies. `POLICIES` maps each policy name to its class; `make_policy` builds one."""

from __future__ import annotations

from typing import Any

from online.policies.arms import (
    BernoulliThompsonSampling,
    EpsilonGreedy,
    MostPopular,
    UniformRandom,
)
from online.policies.base import FeedbackBatch, Policy, RankContext, ScoreDraws
from online.policies.linear_ts import LinearThompsonSampling
from online.policies.river_ctr import RiverCTR

POLICIES: dict[str, type[Policy[Any, Any]]] = {
    cls.name: cls
    for cls in (
        LinearThompsonSampling,
        BernoulliThompsonSampling,
        RiverCTR,
        MostPopular,
        EpsilonGreedy,
        UniformRandom,
    )
}


def make_policy(name: str) -> Policy[Any, Any]:
    """A policy with default hyperparameters; raises ValueError naming the known ones."""
    try:
        return POLICIES[name]()
    except KeyError:
        raise ValueError(f"unknown policy {name!r}; known: {', '.join(POLICIES)}") from None


__all__ = ["POLICIES", "FeedbackBatch", "Policy", "RankContext", "ScoreDraws", "make_policy"]
