"""The direct method (DM) with the reward model's own uncertainty in its interval.

DM reads the policy's value off the reward model alone: sum over logged observations of
sum_i pi_e(i at l_o) q(i, l_o), per observation. Its interval used to resample the rounds with
q held fixed, as if the fitted model were exact, and covered the truth in 0 of 360 runs. Here
the model is refitted on every bootstrap replicate (`PositionCTRModel`'s smoothed counts,
vectorised) with the same round weights that resample the policy's side:

    DM     = sum_{i,l} M[i, l] q(i, l) / N
    DM_b   = sum_{i,l} M[i, l] q_b(i, l) / N  +  (sum_c w_bc T_c / sum_c w_bc n_c - sum_c T_c / N)

M float64[rows, L]: the evaluated policy's position probabilities summed over the N logged
observations (row i, at the observation's position l); q: the model fitted on the whole log;
q_b: refitted with Poisson(1) weights w_bc per round c; T_c, n_c: a round's summed DM terms
(under the online model the driver scored with) and its observation count, the first-order
share of the rounds' own variation. The interval covers the truth at its rate when the model's
form is right (`tests/online/evaluation/test_direct_method.py`); when it is not, DM is biased
whatever its interval, which the report tells from the gap between DR and DM.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from online.evaluation.bootstrap import Estimate, check_bootstrap_args
from online.evaluation.reward_model import PositionCTRModel

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DM_MODEL = PositionCTRModel(position_strength=1.0, item_strength=1.0)
"""The reward model DM is fitted with: `PositionCTRModel`'s form with 1 pseudo-impression of
shrinkage (nearly each (item, position)'s raw CTR). The online model's 20 bias DM towards the
position average by more than its standard error (coverage 78% at 500 rounds in the test's
world); DR keeps it, its correction term removes that bias."""
CHUNK_CELLS = 1 << 22
"""(replicate, row, position) cells refitted at once (memory bound: 32 MiB per float64 array)."""


def smoothed_ctr(shown: FloatArray, reward: FloatArray, model: PositionCTRModel) -> FloatArray:
    """float64[..., rows, L]: `model`'s hierarchical smoothed CTR from counts of shown items and
    summed rewards float64[..., rows, L] (leading axes: replicates), as `model.predict` computes
    it from its own counts."""
    total_shown, total_reward = shown.sum(axis=(-2, -1)), reward.sum(axis=(-2, -1))
    g = (total_reward + model.prior_alpha) / (total_shown + model.prior_alpha + model.prior_beta)
    position = (reward.sum(axis=-2) + model.position_strength * g[..., None]) / (
        shown.sum(axis=-2) + model.position_strength)
    out: FloatArray = (reward + model.item_strength * position[..., None, :]) / (shown + model.item_strength)
    return out


def direct_method(
    mass: FloatArray, fit: tuple[IntArray, IntArray, FloatArray, IntArray], terms: tuple[FloatArray, IntArray],
    model: PositionCTRModel, *, rng: np.random.Generator, n_bootstrap: int = 1000, confidence: float = 0.95,
) -> Estimate:
    """DM with the model refitted on every replicate (see the module doc).

    mass: float64[rows, L] M; fit: (rows int64[F], positions int64[F], rewards float64[F], round
    int64[F]) the logged observations the model is fitted on; terms: (float64[N] each evaluated
    observation's DM term under the online model, int64[N] its round). Estimate.n = N.
    """
    check_bootstrap_args(n_bootstrap, confidence)
    rows, positions, rewards, fit_rounds = fit
    values, term_rounds = terms
    if values.size == 0:
        raise ValueError("terms: must not be empty")
    n_rows, length = mass.shape
    labels, inverse = np.unique(np.concatenate([fit_rounds, term_rounds]), return_inverse=True)
    fit_unit, term_unit = inverse[: fit_rounds.size], inverse[fit_rounds.size:]
    cell = rows * length + positions
    inside = (rows < n_rows) & (positions < length)
    cell, fit_unit, rewards = cell[inside], fit_unit[inside], rewards[inside]
    shown: FloatArray = np.bincount(cell, minlength=n_rows * length).reshape(n_rows, length).astype(np.float64)
    summed: FloatArray = np.bincount(cell, weights=rewards, minlength=n_rows * length).reshape(n_rows, length).astype(
        np.float64)
    n = values.size
    value = float((mass * smoothed_ctr(shown, summed, model)).sum() / n)
    unit_terms = np.bincount(term_unit, weights=values, minlength=labels.size)
    unit_counts = np.bincount(term_unit, minlength=labels.size).astype(np.float64)
    stats = np.empty(n_bootstrap)
    chunk = max(1, min(n_bootstrap, CHUNK_CELLS // max(1, n_rows * length)))
    for start in range(0, n_bootstrap, chunk):
        size = min(chunk, n_bootstrap - start)
        weights = rng.poisson(1.0, size=(size, labels.size)).astype(np.float64)
        flat = (cell[None, :] + (np.arange(size) * n_rows * length)[:, None]).ravel()
        observation_weights = weights[:, fit_unit].ravel()
        shown_b: FloatArray = np.bincount(flat, weights=observation_weights, minlength=size * n_rows * length).astype(
            np.float64)
        summed_b: FloatArray = np.bincount(flat, weights=observation_weights * np.tile(rewards, size),
                                           minlength=size * n_rows * length).astype(np.float64)
        q_b = smoothed_ctr(shown_b.reshape(size, n_rows, length), summed_b.reshape(size, n_rows, length), model)
        fitted = (q_b * mass[None]).sum(axis=(1, 2)) / n
        counts = weights @ unit_counts
        rounds_part = np.divide(weights @ unit_terms, counts, out=np.full(size, np.nan), where=counts > 0)
        stats[start : start + size] = fitted + rounds_part - values.sum() / n
    finite = stats[np.isfinite(stats)]
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite, [tail, 1.0 - tail]) if finite.size else (np.nan, np.nan)
    return Estimate(name="dm", value=value, ci_low=float(low), ci_high=float(high), n=n)
