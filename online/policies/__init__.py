"""Ranking policies. `POLICIES` maps each policy name to its class; `make_policy` builds one."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from online.policies.arms import (
    BernoulliThompsonSampling,
    EpsilonGreedy,
    MostPopular,
    UniformRandom,
)
from online.policies.base import FeedbackBatch, Policy, RankContext, ScoreDraws
from online.policies.hybrid_ts import HybridThompsonSampling
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
        HybridThompsonSampling,  # last: the demo seeds policy i with [seed, i], so earlier rows keep theirs
    )
}


def _policy_class(name: str) -> type[Policy[Any, Any]]:
    try:
        return POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown policy {name!r}; known: {', '.join(POLICIES)}") from None


def hyperparameter_type(name: str) -> type | None:
    """The hyperparameter dataclass the policy's constructor takes as `params`, or None for
    a policy without hyperparameters. Raises ValueError for an unknown policy name."""
    hints = typing.get_type_hints(_policy_class(name).__init__)
    annotation = hints.get("params")
    if annotation is None:
        return None
    options = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    for option in options:
        if dataclasses.is_dataclass(option) and isinstance(option, type):
            return option
    raise TypeError(f"policy {name!r}: params annotation {annotation!r} names no dataclass")


def make_policy(name: str, params: object | None = None) -> Policy[Any, Any]:
    """A policy with the given hyperparameter dataclass (None: defaults); raises ValueError
    naming the known policies for an unknown name."""
    cls = _policy_class(name)
    if params is None:
        return cls()
    expected = hyperparameter_type(name)
    if expected is None or not isinstance(params, expected):
        raise TypeError(f"policy {name!r} takes {expected.__name__ if expected else 'no'} hyperparameters, "
                        f"got {type(params).__name__}")
    return cls(params)  # type: ignore[call-arg]


__all__ = [
    "POLICIES", "FeedbackBatch", "Policy", "RankContext", "ScoreDraws", "hyperparameter_type", "make_policy",
]
