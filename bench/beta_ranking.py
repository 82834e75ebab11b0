"""Exact position probabilities of a ranking by independent Beta draws (Bernoulli Thompson sampling).

Bernoulli TS ranks n items by one draw X_i ~ Beta(alpha_i, beta_i) each, best first. The chance
that item i lands at position l (0 = top) is

    P[i, l] = integral f_i(x) * e_l^(-i)(x) dx,   e_l^(-i)(x) = P(exactly l of the others exceed x),

and e_l^(-i)(x) is the z^l coefficient of prod_{j != i} (F_j(x) + S_j(x) z), with F_j the Beta CDF
and S_j = 1 - F_j. `beta_rank_probabilities` evaluates it by quadrature in the measure dF_i:
the exact CDF increments (scipy.special.betainc) over a grid, times e_l^(-i) at the interval
midpoints. Every item's mass is exact (the grid runs from 0 to 1), so the
only error is the midpoint rule's on the smooth e_l; the columns sum to 1 up to it
(`column_sum_error` measures it). The leave-one-out polynomials come from prefix and suffix
products over the items (non-negative terms only, no cancellation).

This replaces the Monte Carlo estimate (the share of m sampled rankings putting i at l) where
the policy is Bernoulli TS: it is the quantity that estimate converges to, at no sampling error.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import special

FloatArray = npt.NDArray[np.float64]

STATES_PER_CHUNK_ELEMENTS = 1 << 20
"""Bound on states x items x grid points handled at once (about 8 MiB per float64 array)."""

PILOT_POINTS = 16
"""Coarse grid points per state that place the quadrature range (`_bounds`)."""


def _bounds(alpha: FloatArray, beta: FloatArray, n_positions: int, width: float) -> tuple[FloatArray, FloatArray]:
    """(low, high) float64[s]: the x range where a top-L position can be decided.

    high: the largest item mean + width sd (clipped to 1). low: the largest x of a coarse pilot
    grid at which more than n_positions + 30 items are still expected above x (below it the
    chance that fewer than L others exceed x is < 1e-9), else the smallest mean - width sd."""
    total = alpha + beta
    mean = alpha / total
    sd = np.sqrt(alpha * beta / (total**2 * (total + 1.0)))
    low = np.clip((mean - width * sd).min(axis=1), 0.0, 1.0)
    high = np.clip((mean + width * sd).max(axis=1), 0.0, 1.0)
    pilot = low[:, None] + (high - low)[:, None] * np.linspace(0.0, 1.0, PILOT_POINTS)[None, :]  # [s, p]
    above = alpha.shape[1] - special.betainc(alpha[:, :, None], beta[:, :, None], pilot[:, None, :]).sum(axis=1)
    crowded = above > n_positions + 30
    last = PILOT_POINTS - 1 - np.argmax(crowded[:, ::-1], axis=1)
    low = np.where(crowded.any(axis=1), pilot[np.arange(len(low)), last], low)
    return low, high


def _grid(low: FloatArray, high: FloatArray, n_grid: int) -> tuple[FloatArray, FloatArray]:
    """(edges float64[s, n_grid + 2], midpoints float64[s, n_grid + 1]): 0, n_grid points evenly
    over [low, high], then 1; the midpoints of the intervals between consecutive edges."""
    inner = low[:, None] + (high - low)[:, None] * np.linspace(0.0, 1.0, n_grid)[None, :]
    s = low.shape[0]
    edges: FloatArray = np.concatenate([np.zeros((s, 1)), inner, np.ones((s, 1))], axis=1)
    return edges, 0.5 * (edges[:, 1:] + edges[:, :-1])


def _times_factor(poly: FloatArray, below: FloatArray, above: FloatArray, out: FloatArray) -> None:
    """out = poly * (below + above z), truncated to poly's degree. poly, out: [L, ...]; below, above: [...]."""
    np.multiply(poly, below, out=out)
    out[1:] += poly[:-1] * above


def _leave_one_out(cdf: FloatArray, n_positions: int) -> FloatArray:
    """float64[n, L, s, g]: coefficients z^0..z^(L-1) of prod_{j != i} (F_j + S_j z) per item i.

    cdf: float64[n, s, g] (items first)."""
    n = cdf.shape[0]
    survival = 1.0 - cdf
    shape = (n + 1, n_positions, *cdf.shape[1:])
    prefix, suffix = np.zeros(shape), np.zeros(shape)
    prefix[0, 0] = 1.0
    suffix[n, 0] = 1.0
    for j in range(n):
        _times_factor(prefix[j], cdf[j], survival[j], prefix[j + 1])
        back = n - 1 - j
        _times_factor(suffix[back + 1], cdf[back], survival[back], suffix[back])
    left, right = prefix[:n], suffix[1:]
    out = np.empty_like(left)
    scratch = np.empty(left.shape[:1] + left.shape[2:])
    for degree in range(n_positions):
        np.multiply(left[:, 0], right[:, degree], out=out[:, degree])
        for k in range(1, degree + 1):
            np.multiply(left[:, k], right[:, degree - k], out=scratch)
            out[:, degree] += scratch
    return out


def beta_rank_probabilities(
    alpha: npt.ArrayLike, beta: npt.ArrayLike, n_positions: int, *, n_grid: int = 64, width: float = 14.0
) -> FloatArray:
    """float64[s, n, L]: P(item i's Beta draw is the (l+1)-th largest of the n) for s states.

    alpha, beta: float[s, n] (> 0), one row of Beta parameters per state (a state = one set
    of posteriors; rows are independent). n_positions: L, 1 <= L <= n. n_grid: quadrature
    points per state over the range where the top L positions are decided (`_bounds`), plus
    0 and 1; e_l is taken at the interval midpoints. Cost: O(s * n * n_grid * L^2) time;
    states are processed in chunks of about 2 M (state, item, grid point) triples.
    """
    a = np.asarray(alpha, dtype=np.float64)
    b = np.asarray(beta, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"alpha, beta: must be float[s, n] of one shape, got {a.shape} and {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b)) and np.all(a > 0) and np.all(b > 0)):
        raise ValueError("alpha, beta: must be finite and > 0")
    s, n = a.shape
    if not 1 <= n_positions <= n:
        raise ValueError(f"n_positions: must be in [1, {n}], got {n_positions}")
    if n_grid < 2 or not width > 0:
        raise ValueError(f"n_grid: must be >= 2 and width > 0, got {n_grid} and {width}")
    out = np.empty((s, n, n_positions))
    chunk = max(1, STATES_PER_CHUNK_ELEMENTS // (n * (n_grid + 2)))
    for start in range(0, s, chunk):
        rows = slice(start, min(start + chunk, s))
        a_t, b_t = a[rows].T[:, :, None], b[rows].T[:, :, None]  # [n, c, 1]
        edges, middles = _grid(*_bounds(a[rows], b[rows], n_positions, width), n_grid)
        mass = np.diff(special.betainc(a_t, b_t, edges[None, :, :]), axis=2)  # [n, c, g + 1]
        others = _leave_one_out(special.betainc(a_t, b_t, middles[None, :, :]), n_positions)  # [n, L, c, g + 1]
        out[rows] = np.einsum("ncg,nlcg->cnl", mass, others)
    return out


def column_sum_error(probabilities: FloatArray) -> float:
    """max |sum_i P[s, i, l] - 1|: the quadrature error bound check (each position is filled
    by exactly one item). probabilities: float64[s, n, L]."""
    return float(np.abs(probabilities.sum(axis=1) - 1.0).max()) if probabilities.size else 0.0
