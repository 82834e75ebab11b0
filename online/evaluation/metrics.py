"""Ranking, beyond-accuracy, exposure-fairness and calibration metrics.

Item ids are any hashable (str ids or int indices). A "slate" is a sequence of item ids
in display order (position 0 = top). All functions are pure and return plain floats.

- Ranking (`ndcg_at_k`, `hit_rate_at_k`, `mrr`): per-list scores averaged over the lists
  that have at least one relevant item (NaN when none has); relevance labels are graded
  (>= 0, 0 = not relevant), given per list as a mapping item -> label that covers every
  labelled item of that list's query, ranked or not (the ideal DCG uses them all).
- Beyond accuracy: `catalogue_coverage`, `intra_list_diversity`, `novelty`.
- Exposure: `item_exposure`, `gini`, `exposure_gini`, `provider_exposure_gini`.
- Calibration: `calibration_bins`, `expected_calibration_error`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

import online.evaluation._checks as _checks

K = TypeVar("K", bound=Hashable)
FloatArray = npt.NDArray[np.float64]


def _check_lists(ranked: Sequence[Sequence[K]], relevance: Sequence[Mapping[K, float]], k: int | None) -> None:
    if len(ranked) != len(relevance):
        raise ValueError(f"relevance: must have one mapping per ranked list ({len(ranked)}), got {len(relevance)}")
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise ValueError(f"k: must be an integer >= 1, got {k!r}")
    for labels in relevance:
        if any(not np.isfinite(value) or value < 0 for value in labels.values()):
            raise ValueError("relevance: labels must be finite and >= 0")


def _mean_or_nan(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def ndcg_at_k(ranked: Sequence[Sequence[K]], relevance: Sequence[Mapping[K, float]], k: int) -> float:
    """Mean NDCG@k with linear gains: DCG = sum_{p < k} rel(item_p) / log2(p + 2).

    ranked: n lists of item ids, best first; relevance: n mappings item -> label (missing
    items count 0). The ideal DCG sorts all of the list's labels.
    """
    _check_lists(ranked, relevance, k)
    discounts = 1.0 / np.log2(np.arange(k) + 2.0)
    scores: list[float] = []
    for items, labels in zip(ranked, relevance, strict=True):
        ideal_gains = np.sort(np.fromiter(labels.values(), dtype=np.float64, count=len(labels)))[::-1][:k]
        ideal = float((ideal_gains * discounts[: ideal_gains.size]).sum())
        if ideal <= 0:
            continue
        gains = np.array([labels.get(item, 0.0) for item in items[:k]], dtype=np.float64)
        scores.append(float((gains * discounts[: gains.size]).sum()) / ideal)
    return _mean_or_nan(scores)


def hit_rate_at_k(ranked: Sequence[Sequence[K]], relevance: Sequence[Mapping[K, float]], k: int) -> float:
    """Share of lists with a relevant item (label > 0) among their first k items.

    Shapes as for `ndcg_at_k`.
    """
    _check_lists(ranked, relevance, k)
    hits: list[float] = []
    for items, labels in zip(ranked, relevance, strict=True):
        if not any(value > 0 for value in labels.values()):
            continue
        hits.append(float(any(labels.get(item, 0.0) > 0 for item in items[:k])))
    return _mean_or_nan(hits)


def mrr(ranked: Sequence[Sequence[K]], relevance: Sequence[Mapping[K, float]], k: int | None = None) -> float:
    """Mean reciprocal rank of the first relevant item (label > 0); 0 for a list without one
    in its first k items (the whole list when k is None). Shapes as for `ndcg_at_k`."""
    _check_lists(ranked, relevance, k)
    scores: list[float] = []
    for items, labels in zip(ranked, relevance, strict=True):
        if not any(value > 0 for value in labels.values()):
            continue
        head = items if k is None else items[:k]
        rank = next((p + 1 for p, item in enumerate(head) if labels.get(item, 0.0) > 0), None)
        scores.append(0.0 if rank is None else 1.0 / rank)
    return _mean_or_nan(scores)


def catalogue_coverage(slates: Iterable[Iterable[K]], catalog: Collection[K]) -> float:
    """Fraction of the catalog's items recommended at least once (items outside the
    catalog are ignored). catalog: the m item ids; m >= 1."""
    catalog_set = set(catalog)
    if not catalog_set:
        raise ValueError("catalog: must not be empty")
    shown = {item for slate in slates for item in slate}
    return len(shown & catalog_set) / len(catalog_set)


def intra_list_diversity(
    slates: Sequence[Sequence[int]] | npt.NDArray[np.integer[Any]], embeddings: npt.ArrayLike
) -> float:
    """Mean over slates of the mean pairwise cosine distance (1 - cos) of their items.

    slates: n lists of row indices into embeddings float[m, d] (a rectangular int[n, L]
    array is handled in one batch). Slates with fewer than 2 items are skipped; NaN when
    no slate has 2. Embeddings of zero norm raise ValueError.
    """
    vectors = _checks.floats("embeddings", embeddings, ndim=2)
    norms = np.linalg.norm(vectors, axis=1)
    if np.any(norms == 0):
        raise ValueError(f"embeddings: row {int(np.argmin(norms))} has zero norm")
    unit = vectors / norms[:, None]
    lists = [np.asarray(slate, dtype=np.int64) for slate in slates]
    for index in lists:
        if index.size and (index.min() < 0 or index.max() >= unit.shape[0]):
            raise ValueError(f"slates: item indices must be in [0, {unit.shape[0]})")
    values: list[float] = []
    for length in sorted({index.size for index in lists if index.size >= 2}):
        block = np.stack([index for index in lists if index.size == length])
        vecs = unit[block]
        gram = np.einsum("nld,nmd->nlm", vecs, vecs)
        off_diagonal = gram.sum(axis=(1, 2)) - np.trace(gram, axis1=1, axis2=2)
        values.extend((1.0 - off_diagonal / (length * (length - 1))).tolist())
    return _mean_or_nan(values)


def popularity_from_interactions(item_ids: Iterable[K]) -> dict[K, float]:
    """Each item's share of the interactions (one entry per interaction): values sum to 1."""
    counts = Counter(item_ids)
    total = sum(counts.values())
    if total == 0:
        raise ValueError("item_ids: must not be empty")
    return {item: count / total for item, count in counts.items()}


def novelty(slates: Sequence[Sequence[K]], popularity: Mapping[K, float], default: float | None = None) -> float:
    """Mean over slates of the mean -log2(popularity) of their items (bits; higher = less
    popular). popularity: item -> share of interactions in (0, 1]; `default` is used for
    items absent from it (ValueError naming the item when None). Empty slates are skipped."""
    if default is not None and not 0.0 < default <= 1.0:
        raise ValueError(f"default: must be in (0, 1], got {default!r}")
    values: list[float] = []
    for slate in slates:
        if not slate:
            continue
        shares = []
        for item in slate:
            share = popularity.get(item, default)
            if share is None:
                raise ValueError(f"popularity: no value for item {item!r} (pass default=)")
            if not 0.0 < share <= 1.0:
                raise ValueError(f"popularity: value for item {item!r} must be in (0, 1], got {share!r}")
            shares.append(share)
        values.append(float(-np.log2(np.asarray(shares)).mean()))
    return _mean_or_nan(values)


def position_weights(length: int, position_weighted: bool) -> FloatArray:
    """float[length]: 1 per position, or 1 / log2(2 + p) for p = 0..length-1 (1 at the top)."""
    if not position_weighted:
        return np.ones(length)
    weights: FloatArray = 1.0 / np.log2(2.0 + np.arange(length))
    return weights


def item_exposure(slates: Iterable[Sequence[K]], position_weighted: bool = False) -> dict[K, float]:
    """Total exposure per item over all slates: one per appearance, or 1 / log2(2 + p) at
    position p when position_weighted."""
    exposure: dict[K, float] = {}
    for slate in slates:
        for item, weight in zip(slate, position_weights(len(slate), position_weighted), strict=True):
            exposure[item] = exposure.get(item, 0.0) + float(weight)
    return exposure


def gini(values: npt.ArrayLike) -> float:
    """Gini coefficient of float[m] non-negative values with a positive total.

    0 for equal values; (m - 1) / m when one entry holds everything.
    """
    array = np.sort(_checks.floats("values", values, ndim=1))
    if array[0] < 0:
        raise ValueError("values: must be >= 0")
    total = float(array.sum())
    if total <= 0:
        raise ValueError("values: total must be > 0")
    m = array.size
    ranks = np.arange(1, m + 1, dtype=np.float64)
    return float(2.0 * (ranks * array).sum() / (m * total) - (m + 1.0) / m)


def exposure_gini(slates: Iterable[Sequence[K]], catalog: Collection[K], position_weighted: bool = False) -> float:
    """Gini of item exposure over the whole catalog (never-shown items count 0; items
    outside the catalog are ignored). See `item_exposure` for the weights."""
    if not catalog:
        raise ValueError("catalog: must not be empty")
    exposure = item_exposure(slates, position_weighted)
    return gini(np.array([exposure.get(item, 0.0) for item in set(catalog)]))


def provider_exposure_gini(
    slates: Iterable[Sequence[K]], provider_of: Mapping[K, str], position_weighted: bool = False
) -> float:
    """Gini of exposure summed per provider, over every provider named in provider_of
    (item -> provider); items without a provider are ignored."""
    providers = sorted(set(provider_of.values()))
    if not providers:
        raise ValueError("provider_of: must not be empty")
    totals = dict.fromkeys(providers, 0.0)
    for item, value in item_exposure(slates, position_weighted).items():
        provider = provider_of.get(item)
        if provider is not None:
            totals[provider] += value
    return gini(np.array([totals[provider] for provider in providers]))


def calibration_bins(
    predicted: npt.ArrayLike, observed: npt.ArrayLike, n_bins: int = 10
) -> tuple[npt.NDArray[np.int64], FloatArray, FloatArray]:
    """Reliability table over equal-width bins of [0, 1] (the last bin includes 1).

    predicted: float[n] predicted CTRs in [0, 1]; observed: float[n] outcomes (clicks 0/1,
    or rates in [0, 1]). Returns (count int[n_bins], mean predicted float[n_bins], mean
    observed float[n_bins]); the means are NaN in empty bins.
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins: must be an integer >= 1, got {n_bins!r}")
    pred = _checks.probabilities("predicted", _checks.floats("predicted", predicted, ndim=1))
    obs = _checks.probabilities("observed", _checks.floats("observed", observed, ndim=1, shape=pred.shape))
    bins = np.minimum((pred * n_bins).astype(np.int64), n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_pred = np.bincount(bins, weights=pred, minlength=n_bins) / counts
        mean_obs = np.bincount(bins, weights=obs, minlength=n_bins) / counts
    return counts, mean_pred, mean_obs


def expected_calibration_error(predicted: npt.ArrayLike, observed: npt.ArrayLike, n_bins: int = 10) -> float:
    """ECE = sum over non-empty bins of (count / n) * |mean predicted - mean observed|.

    Shapes and bins as for `calibration_bins`; 0 for perfect calibration, at most 1.
    """
    counts, mean_pred, mean_obs = calibration_bins(predicted, observed, n_bins)
    filled = counts > 0
    return float((counts[filled] / counts.sum() * np.abs(mean_pred[filled] - mean_obs[filled])).sum())
