"""Short reasons for slate items, derived from the model and the memory.

First rule that applies, per item:

1. placed by exploration (not in the slate the same procedure builds from the posterior
   means) and shown fewer than `new_item_exposures` times in the window: "new: exploring";
2. placed by exploration otherwise: "exploring";
3. the nearest item the user recently clicked (cosine of item vectors, the item itself
   excluded) is at least `similar_min_cosine` close: "similar to <item id>";
4. among the request's k most clicked candidates in its scenario over the window (with at
   least one click): "popular in <scenario>";
5. otherwise: "high predicted relevance".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from online.slates import top_k

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def nearest_clicked(
    slate_rows: IntArray, clicked_rows: IntArray, vectors: npt.NDArray[np.floating]
) -> tuple[IntArray, FloatArray]:
    """For each slate row int64[k], the clicked row int64[k] with the largest cosine
    similarity (itself excluded) and that similarity float64[k] (-inf when none).
    vectors: the catalog's float[R, d]."""
    k = len(slate_rows)
    if len(clicked_rows) == 0:
        return np.full(k, -1, dtype=np.int64), np.full(k, -np.inf)
    slate = np.asarray(vectors[slate_rows], dtype=np.float64)
    clicked = np.asarray(vectors[clicked_rows], dtype=np.float64)
    slate /= np.maximum(np.linalg.norm(slate, axis=1, keepdims=True), 1e-12)
    clicked /= np.maximum(np.linalg.norm(clicked, axis=1, keepdims=True), 1e-12)
    similarity = slate @ clicked.T
    similarity[slate_rows[:, None] == clicked_rows[None, :]] = -np.inf
    best = np.argmax(similarity, axis=1)
    return clicked_rows[best], similarity[np.arange(k), best]


def popular_mask(candidate_clicks: FloatArray, k: int) -> npt.NDArray[np.bool_]:
    """bool[n]: candidates among the k most clicked (ties broken by order) with >= 1 click."""
    mask = np.zeros(len(candidate_clicks), dtype=bool)
    if len(candidate_clicks):
        mask[top_k(candidate_clicks[None, :], k)[0]] = True
    mask &= candidate_clicks > 0
    return mask


def explain(
    slate_rows: IntArray,
    explored: Sequence[bool],
    exposures: FloatArray,
    popular: Sequence[bool],
    nearest: tuple[IntArray, FloatArray],
    item_ids: Sequence[str],
    scenario: str,
    new_item_exposures: int,
    similar_min_cosine: float,
) -> list[str]:
    """One reason per slate item (see module doc). Per slate item: rows int64[k], explored
    flags, windowed exposures float64[k], popular flags, nearest clicked (rows, cosines)
    from `nearest_clicked`; item_ids: the catalog's ids by row."""
    near_rows, near_cos = nearest
    reasons: list[str] = []
    for position in range(len(slate_rows)):
        if explored[position]:
            reasons.append("new: exploring" if exposures[position] < new_item_exposures else "exploring")
        elif near_rows[position] >= 0 and near_cos[position] >= similar_min_cosine:
            reasons.append(f"similar to {item_ids[int(near_rows[position])]}")
        elif popular[position]:
            reasons.append(f"popular in {scenario}")
        else:
            reasons.append("high predicted relevance")
    return reasons
