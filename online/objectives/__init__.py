"""Slate objectives beyond relevance: diversity, novelty, exposure fairness, business filters,
explanations. Pure (numpy, pydantic); applied by `online.engine.Engine` to every Monte Carlo
draw so that logged propensities are those of the whole randomised procedure."""

from online.objectives.filters import FilterResult, filter_candidates
from online.objectives.memory import ExposureWindow, ObjectiveMemory
from online.objectives.objectives import Objectives, Ranking
from online.objectives.rerank import rerank, standardise, utilities
from online.objectives.settings import FilterSettings, ObjectiveSettings

__all__ = [
    "ExposureWindow",
    "FilterResult",
    "FilterSettings",
    "ObjectiveMemory",
    "ObjectiveSettings",
    "Objectives",
    "Ranking",
    "filter_candidates",
    "rerank",
    "standardise",
    "utilities",
]
