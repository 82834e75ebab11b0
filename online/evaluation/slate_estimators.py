"""Slate-level off-policy estimators: the value of a slate is the sum of its position rewards.

Notation: n logged slates of L positions; rewards r[i, l]; per-position logging
propensities pscores[i, l] = pi_0(item a_il at position l | x_i) in (0, 1]; per-position
evaluation probabilities eval_probs[i, l] = pi_e(a_il at l | x_i) in [0, 1]; the ratio
rho[i, l] = eval_probs / pscores. `mask` bool[n, L] marks positions that exist (shorter
slates); masked-out entries are ignored (rewards 0, ratio 1), whatever their values.

- `slate_independent_ips` (IIPS, OBP SlateIndependentIPS): mean_i sum_l rho[i,l] r[i,l].
  Unbiased when each position's reward depends only on the item at that position.
- `slate_cascade_ips` (RIPS, OBP SlateRewardInteractionIPS): mean_i sum_l W[i,l] r[i,l] with
  W[i,l] = pi_e(a_i0..a_il) / pi_0(a_i0..a_il) the ratio of prefix (cascade) probabilities:
  given them (`prefix=True`, obp's `pscore_cascade`), or given conditional probabilities
  pi(a_il | a_i0..a_i,l-1), whose running product is that ratio. Unbiased under the cascade
  assumption. A running product of *marginal* ratios is not a prefix ratio for rankings drawn
  without replacement: RIPS fed marginals is biased there (online/propensities.py).
- `slate_standard_ips` (SIPS, OBP SlateStandardIPS): mean_i (pi_e(slate_i) / pi_0(slate_i))
  sum_l r[i,l] given the joint slate probabilities as float[n] (obp's `pscore`); given
  float[n, L] per-position values their product is used, which is the joint probability only
  when positions are drawn independently (biased for rankings without replacement).

Bootstrap resamples slates (the unit is the slate, so position correlation is respected).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

import online.evaluation._checks as _checks
from online.evaluation.bootstrap import Estimate, check_bootstrap_args
from online.evaluation.estimators import ratio_estimate

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def _mask(mask: npt.ArrayLike | None, shape: tuple[int, ...]) -> BoolArray:
    if mask is None:
        return np.ones(shape, dtype=bool)
    array = np.asarray(mask)
    if array.dtype != np.bool_:
        raise ValueError(f"mask: must be boolean, got dtype {array.dtype}")
    if array.shape != shape:
        raise ValueError(f"mask: must have shape {shape}, got {array.shape}")
    return array


def _masked(name: str, values: npt.ArrayLike, mask: BoolArray, fill: float) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if array.shape != mask.shape:
        raise ValueError(f"{name}: must have shape {mask.shape}, got {array.shape}")
    return _checks.floats(name, np.where(mask, array, fill), ndim=2)


def _ratios(
    pscores: npt.ArrayLike, eval_probs: npt.ArrayLike, mask: BoolArray
) -> FloatArray:
    pscore = _checks.propensities("pscores", _masked("pscores", pscores, mask, 1.0))
    prob = _checks.probabilities("eval_probs", _masked("eval_probs", eval_probs, mask, 1.0))
    ratio: FloatArray = prob / pscore
    return ratio


def _rewards(rewards: npt.ArrayLike, mask: npt.ArrayLike | None) -> tuple[FloatArray, BoolArray]:
    shape = np.shape(rewards)
    if len(shape) != 2:
        raise ValueError(f"rewards: must have 2 dimensions [n, L], got shape {shape}")
    shown = _mask(mask, shape)
    reward = _masked("rewards", rewards, shown, 0.0)
    return reward, shown


def slate_propensity(position_propensities: npt.ArrayLike, mask: npt.ArrayLike | None = None) -> FloatArray:
    """float[n]: product over the shown positions of float[n, L] per-position propensities
    (the slate propensity when positions are filled independently)."""
    values = _checks.floats("position_propensities", position_propensities, ndim=2)
    shown = _mask(mask, values.shape)
    product: FloatArray = np.where(shown, values, 1.0).prod(axis=1)
    return product


def slate_independent_ips(
    rewards: npt.ArrayLike,
    pscores: npt.ArrayLike,
    eval_probs: npt.ArrayLike,
    *,
    rng: np.random.Generator,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    mask: npt.ArrayLike | None = None,
    clip: float | None = None,
) -> Estimate:
    """IIPS: mean_i sum_l rho[i,l] r[i,l]; all inputs float[n, L] (mask bool[n, L]).

    The value is in reward units per slate. clip caps each rho[i,l].
    """
    check_bootstrap_args(n_bootstrap, confidence)
    reward, shown = _rewards(rewards, mask)
    weight = np.minimum(_ratios(pscores, eval_probs, shown), _checks.clip_value(clip))
    terms = (weight * reward).sum(axis=1)
    return ratio_estimate(
        "slate_iips", terms, np.ones_like(terms), terms.size,
        rng=rng, n_bootstrap=n_bootstrap, confidence=confidence, clusters=None,
    )


def slate_cascade_ips(
    rewards: npt.ArrayLike,
    pscores: npt.ArrayLike,
    eval_probs: npt.ArrayLike,
    *,
    rng: np.random.Generator,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    mask: npt.ArrayLike | None = None,
    clip: float | None = None,
    prefix: bool = False,
) -> Estimate:
    """RIPS: mean_i sum_l W[i,l] r[i,l]; inputs float[n, L] in display order (column 0 = top).

    prefix=True: pscores, eval_probs are prefix probabilities P(positions 0..l), W their
    ratio; else per-position conditional probabilities, W the running product of their
    ratios. clip caps each W[i,l].
    """
    check_bootstrap_args(n_bootstrap, confidence)
    reward, shown = _rewards(rewards, mask)
    ratios = _ratios(pscores, eval_probs, shown)
    weight = np.minimum(ratios if prefix else np.cumprod(ratios, axis=1), _checks.clip_value(clip))
    terms = (weight * reward).sum(axis=1)
    return ratio_estimate(
        "slate_rips", terms, np.ones_like(terms), terms.size,
        rng=rng, n_bootstrap=n_bootstrap, confidence=confidence, clusters=None,
    )


def slate_standard_ips(
    rewards: npt.ArrayLike,
    pscores: npt.ArrayLike,
    eval_probs: npt.ArrayLike,
    *,
    rng: np.random.Generator,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    mask: npt.ArrayLike | None = None,
    clip: float | None = None,
) -> Estimate:
    """SIPS: mean_i w_i sum_l r[i,l] with one weight per slate.

    rewards: float[n, L]. pscores, eval_probs: either float[n, L] per-position values
    (w_i = prod over shown positions of rho[i,l]) or float[n] joint slate probabilities
    pi_0(slate_i|x_i), pi_e(slate_i|x_i) (w_i = their ratio). clip caps w_i.
    """
    check_bootstrap_args(n_bootstrap, confidence)
    reward, shown = _rewards(rewards, mask)
    if np.ndim(pscores) == 1:
        n = reward.shape[0]
        pscore = _checks.propensities("pscores", _checks.floats("pscores", pscores, ndim=1, shape=(n,)))
        prob = _checks.probabilities("eval_probs", _checks.floats("eval_probs", eval_probs, ndim=1, shape=(n,)))
        weight = prob / pscore
    else:
        weight = _ratios(pscores, eval_probs, shown).prod(axis=1)
    terms = np.minimum(weight, _checks.clip_value(clip)) * reward.sum(axis=1)
    return ratio_estimate(
        "slate_sips", terms, np.ones_like(terms), terms.size,
        rng=rng, n_bootstrap=n_bootstrap, confidence=confidence, clusters=None,
    )
