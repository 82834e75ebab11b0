"""A slate's propensities in the three forms the off-policy estimators need, and the support mix.

From the m slates that m independent runs of the randomised ranking procedure yield for one
request (`Engine.score`: policy draws, filters, objectives; `ranked` int64[m, k], candidate
indices, row 0 the policy's own slate) and a slate s = (s_0, ..., s_{L-1}) of L <= k candidate
indices (position 0 = top):

- marginal[l] = P(s_l at position l)                        per-position IPS, SNIPS, DR, IIPS
- prefix[l]   = P(positions 0..l hold s_0..s_l)             RIPS (obp's `pscore_cascade`)
- joint       = prefix[L - 1] = P(the whole slate is s)      SIPS (obp's `pscore`)

all three from the same m slates: the share of them that agree. Products of marginals are not
prefix or joint probabilities for rankings drawn without replacement (an item at position 0
cannot be at position 1), which is why a product-of-marginals RIPS or SIPS is biased there.

**Support mix.** With probability `epsilon` the served slate is a uniformly random ranking of
the n candidates (`serve`), so every candidate has probability >= epsilon / n at every position
and every slate its uniform prefix probability: the log supports every policy over the same
candidates. The recorded probabilities fold it in exactly: (1 - epsilon) * share + epsilon *
uniform, with the uniform ranking's exact 1/n (marginal) and 1/(n (n-1) ... (n-l)) (prefix).

The shares are unbiased estimates of the procedure's probabilities; their inverse is not
(for a served slate E[1/share] = (1 - (1-p)^m) / p, biased low when p m is small), which the
evaluation reports as the share of logged propensities at the Monte Carlo floor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
SMALLEST_PROBABILITY = float(np.finfo(np.float64).tiny)
"""A recorded probability is at least this (2.2e-308): a uniform prefix probability deep in a
long slate over many candidates underflows float64, and an event's probabilities are > 0."""


def check_epsilon(epsilon: float) -> float:
    """epsilon as a float in [0, 1]; ValueError naming it otherwise."""
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"support_epsilon: must be in [0, 1], got {epsilon!r}")
    return float(epsilon)


@lru_cache(maxsize=1024)
def uniform_prefix(n: int, length: int) -> FloatArray:
    """float64[length] (read-only, shared: one per (n, length)): P(a uniformly random ranking of
    n candidates starts with a given sequence of l + 1 distinct candidates), l = 0..length-1:
    1 / (n (n-1) ... (n-l))."""
    if length > n:
        raise ValueError(f"length: a ranking of {n} candidates has at most {n} positions, got {length}")
    out: FloatArray = np.cumprod(1.0 / (n - np.arange(length, dtype=np.float64)), dtype=np.float64)
    out.flags.writeable = False
    return out


def agreement(ranked: IntArray, slate: IntArray) -> tuple[FloatArray, FloatArray]:
    """(marginal, prefix) float64[L] shares of the m slates `ranked` int64[m, k] that put
    slate[l] at l, and that agree with slate int64[L] (L <= k) on positions 0..l. A slate
    index < 0 (not a candidate) agrees with no draw."""
    length = slate.shape[0]
    if length > ranked.shape[1]:
        raise ValueError(f"slate: {length} positions, the draws have {ranked.shape[1]}")
    matches = ranked[:, :length] == slate[None, :]
    m = ranked.shape[0]
    marginal: FloatArray = matches.sum(axis=0) / m
    prefix: FloatArray = np.logical_and.accumulate(matches, axis=1).sum(axis=0) / m
    return marginal, prefix


@dataclass(frozen=True)
class SlatePropensities:
    """A slate's probabilities under a randomised ranking procedure (see the module doc).

    marginal, prefix: float64[L]; joint is prefix[-1]."""

    marginal: FloatArray
    prefix: FloatArray

    @property
    def joint(self) -> float:
        return float(self.prefix[-1])


def slate_propensities(ranked: IntArray, slate: IntArray, n_candidates: int, epsilon: float) -> SlatePropensities:
    """The probabilities of `slate` int64[L] (candidate indices; < 0 for an item that is not
    a candidate) under the procedure whose m slates are `ranked` int64[m, k], mixed with a
    uniformly random ranking of the n candidates with probability `epsilon`."""
    epsilon = check_epsilon(epsilon)
    marginal, prefix = agreement(ranked, slate)
    if epsilon > 0.0:
        inside = np.logical_and.accumulate(slate >= 0)
        uniform = np.where(inside, uniform_prefix(n_candidates, slate.shape[0]), 0.0)
        marginal = (1.0 - epsilon) * marginal + epsilon * np.where(slate >= 0, 1.0 / n_candidates, 0.0)
        prefix = (1.0 - epsilon) * prefix + epsilon * uniform
    return SlatePropensities(marginal, prefix)


def position_matrix(ranked: IntArray, n_candidates: int, epsilon: float = 0.0) -> FloatArray:
    """float64[n, k]: P(candidate i at position l) over the m slates `ranked` int64[m, k],
    mixed with a uniformly random ranking (1/n everywhere) with probability `epsilon`.
    Each column sums to 1."""
    m, k = ranked.shape
    flat = (ranked + n_candidates * np.arange(k, dtype=np.int64)[None, :]).reshape(-1)
    counts = np.bincount(flat, minlength=n_candidates * k).reshape(k, n_candidates).T
    probs: FloatArray = counts / float(m)
    epsilon = check_epsilon(epsilon)
    if epsilon > 0.0:
        probs = (1.0 - epsilon) * probs + epsilon / n_candidates
    return probs


def serve(ranked: IntArray, n_candidates: int, epsilon: float, rng: np.random.Generator) -> tuple[IntArray, bool]:
    """(slate int64[k], uniform): the slate to serve, the procedure's own (row 0 of `ranked`
    int64[m, k]) or, with probability `epsilon`, the first k of a uniformly random ranking of
    the n candidates (uniform True). Draws from `rng` only when epsilon > 0."""
    if check_epsilon(epsilon) == 0.0 or rng.random() >= epsilon:
        return ranked[0], False
    uniform: IntArray = rng.permutation(n_candidates)[: ranked.shape[1]].astype(np.int64)
    return uniform, True


def recorded_probabilities(propensities: SlatePropensities, length: int) -> tuple[list[float], list[float]]:
    """(marginal, prefix) of a slate of `length` items as the slate records them: floats, each
    prefix at least SMALLEST_PROBABILITY. ValueError when the propensities have another length."""
    if propensities.marginal.shape[0] != length:
        raise ValueError(f"propensities: {propensities.marginal.shape[0]} positions for {length} items")
    prefixes: list[float] = np.maximum(propensities.prefix, SMALLEST_PROBABILITY).tolist()
    marginals: list[float] = propensities.marginal.tolist()
    return marginals, prefixes


@dataclass(frozen=True)
class SupportRecord:
    """What a slate records of how its propensities were estimated: the ranked `candidates`
    (None: the request's), the support mix's `epsilon`, the `n_draws` they were estimated over."""

    candidates: Sequence[str] | None
    epsilon: float
    n_draws: int

    def fields(self) -> dict[str, object]:
        """The Slate fields that carry it."""
        fields: dict[str, object] = {"support_epsilon": self.epsilon, "n_draws": self.n_draws}
        if self.candidates is not None:
            fields["candidates"] = tuple(self.candidates)
        return fields
