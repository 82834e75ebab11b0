"""Users who value variety: an item's appeal falls with its likeness to the items above it.

With satiation strength s > 0 the click probability of item i at slate position p becomes

    examination(p) * relevance(u, i) * exp(-s * sum over items j above p of sim(i, j))

where sim(i, j) = sum over attributes a of weight_a * [value_a(i) == value_a(j)] is in [0, 1]
(1: the same category, colour, material, style and brand). A user who has just looked past
two sweaters wants a third one less; an item unlike everything above keeps its full appeal.
Satiation is cumulative (three similar items above tire more than one) and only items above
count (a user reads a slate top down). s = 0 (the default) is the independent click model.

With s > 0 the best slate is no longer "most relevant first": `greedy_slate` picks, position
by position, the item with the highest satiated relevance (the simulator's oracle takes the
better of that and the relevance order; neither is guaranteed optimal, so regret against it
can be slightly negative).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from online.simulation.catalog import ATTRIBUTES

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class SatiationConfig:
    """strength: s >= 0 in the module doc (0: off, the default); weights: per attribute
    (`catalog.ATTRIBUTES` order: category, colour, material, style, brand), >= 0, summing to 1.

    The default weights make the category the main part of likeness (two dresses are alike
    whatever their colour), style next, brand least. At strength ln 2 ~ 0.69 an identical
    item right above halves an item's appeal, a same-category item above cuts it by ~24%.
    """

    strength: float = 0.0
    weights: tuple[float, float, float, float, float] = (0.4, 0.15, 0.15, 0.2, 0.1)

    def __post_init__(self) -> None:
        if not (np.isfinite(self.strength) and self.strength >= 0):
            raise ValueError(f"SatiationConfig.strength must be a finite number >= 0, got {self.strength!r}")
        if len(self.weights) != len(ATTRIBUTES) or min(self.weights) < 0 or abs(sum(self.weights) - 1.0) > 1e-9:
            raise ValueError(
                f"SatiationConfig.weights must be {len(ATTRIBUTES)} weights >= 0 summing to 1, got {self.weights!r}"
            )

    @property
    def active(self) -> bool:
        return self.strength > 0


def similarity(codes_a: IntArray, codes_b: IntArray, weights: FloatArray) -> FloatArray:
    """float64[n, m] attribute likeness of items with codes int64[n, 5] and int64[m, 5]."""
    same = codes_a[:, None, :] == codes_b[None, :, :]
    out: FloatArray = same @ weights
    return out


def satiation_factors(codes: IntArray, positions: IntArray, config: SatiationConfig) -> FloatArray:
    """float64[n] the factor exp(-s * sum of sim to the items at smaller positions) of each of
    n slate items with codes int64[n, 5] at positions int64[n] (ties are not above each other)."""
    weights = np.asarray(config.weights, dtype=np.float64)
    sim = similarity(codes, codes, weights)
    above = positions[None, :] < positions[:, None]
    out: FloatArray = np.exp(-config.strength * (sim * above).sum(axis=1))
    return out


def greedy_slate(relevance: FloatArray, codes: IntArray, k: int, config: SatiationConfig) -> IntArray:
    """int64[min(k, n)] indices into n candidates (relevance float64[n], codes int64[n, 5]):
    at each position the candidate with the highest relevance * satiation factor given the
    items already placed above (ties to the lower index)."""
    weights = np.asarray(config.weights, dtype=np.float64)
    n = len(relevance)
    load = np.zeros(n)
    free = np.ones(n, dtype=bool)
    picked: list[int] = []
    for _ in range(min(k, n)):
        value = np.where(free, relevance * np.exp(-config.strength * load), -np.inf)
        best = int(np.argmax(value))
        picked.append(best)
        free[best] = False
        load += similarity(codes, codes[best : best + 1], weights)[:, 0]
    return np.asarray(picked, dtype=np.int64)
