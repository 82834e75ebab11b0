"""Metrics against hand-computed small examples."""

from __future__ import annotations

import numpy as np
import pytest

from online.evaluation.metrics import (
    calibration_bins,
    catalogue_coverage,
    expected_calibration_error,
    exposure_gini,
    gini,
    hit_rate_at_k,
    intra_list_diversity,
    item_exposure,
    mrr,
    ndcg_at_k,
    novelty,
    popularity_from_interactions,
    position_weights,
    provider_exposure_gini,
)


def test_ndcg_binary_and_graded() -> None:
    assert ndcg_at_k([["a", "b", "c"]], [{"b": 1.0}], k=3) == pytest.approx(1 / np.log2(3))
    assert ndcg_at_k([["a", "b", "c"]], [{"b": 1.0}], k=1) == 0.0
    assert ndcg_at_k([["b", "a"]], [{"b": 1.0}], k=2) == 1.0
    # DCG = 2 + 0 + 1/2; ideal over labels (3, 2, 1) = 3 + 2/log2(3) + 1/2
    graded = ndcg_at_k([["a", "b", "c"]], [{"a": 2.0, "c": 1.0, "d": 3.0}], k=3)
    assert graded == pytest.approx(2.5 / (3 + 2 / np.log2(3) + 0.5))


def test_ranking_metrics_average_over_lists_with_a_relevant_item() -> None:
    ranked = [["a", "b", "c"], ["d", "e", "f"], ["g", "h"]]
    relevance = [{"c": 1.0}, {"x": 1.0}, {}]  # list 1: relevant item never ranked; list 2: none
    assert hit_rate_at_k(ranked, relevance, k=3) == pytest.approx(0.5)
    assert hit_rate_at_k(ranked, relevance, k=2) == 0.0
    assert mrr(ranked, relevance) == pytest.approx((1 / 3 + 0) / 2)
    assert mrr(ranked, relevance, k=2) == 0.0
    assert ndcg_at_k(ranked, relevance, k=3) == pytest.approx((0.5 + 0.0) / 2)
    assert np.isnan(ndcg_at_k([["a"]], [{}], k=1))
    with pytest.raises(ValueError, match="relevance"):
        ndcg_at_k(ranked, relevance[:2], k=3)
    with pytest.raises(ValueError, match="k"):
        mrr(ranked, relevance, k=0)
    with pytest.raises(ValueError, match="relevance"):
        hit_rate_at_k([["a"]], [{"a": -1.0}], k=1)


def test_catalogue_coverage() -> None:
    slates = [["a", "b"], ["b", "c", "z"]]
    assert catalogue_coverage(slates, ["a", "b", "c", "d", "e"]) == pytest.approx(3 / 5)
    assert catalogue_coverage([], ["a"]) == 0.0
    with pytest.raises(ValueError, match="catalog"):
        catalogue_coverage(slates, [])


def test_intra_list_diversity() -> None:
    embeddings = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [3.0, 0.0]])
    # [0, 1]: orthogonal -> 1; [0, 2]: 1 - 1/sqrt(2); [0, 3]: parallel -> 0
    expected = (1.0 + (1 - 1 / np.sqrt(2)) + 0.0) / 3
    assert intra_list_diversity([[0, 1], [0, 2], [0, 3]], embeddings) == pytest.approx(expected)
    assert intra_list_diversity(np.array([[0, 1], [0, 2], [0, 3]]), embeddings) == pytest.approx(expected)
    # three items: pairs (0,1)=1, (0,2)=1-1/sqrt2, (1,2)=1-1/sqrt2; one-item slates skipped
    three = (1.0 + 2 * (1 - 1 / np.sqrt(2))) / 3
    assert intra_list_diversity([[0, 1, 2], [3]], embeddings) == pytest.approx(three)
    assert intra_list_diversity([[0, 1, 2], [0, 1]], embeddings) == pytest.approx((three + 1.0) / 2)
    assert np.isnan(intra_list_diversity([[1]], embeddings))
    with pytest.raises(ValueError, match="embeddings"):
        intra_list_diversity([[0, 1]], np.zeros((2, 2)))
    with pytest.raises(ValueError, match="slates"):
        intra_list_diversity([[0, 9]], embeddings)


def test_novelty_and_popularity() -> None:
    popularity = popularity_from_interactions(["a", "a", "b", "c"])
    assert popularity == {"a": 0.5, "b": 0.25, "c": 0.25}
    assert novelty([["a", "b"], ["c"]], popularity) == pytest.approx(((1 + 2) / 2 + 2) / 2)
    with pytest.raises(ValueError, match="'d'"):
        novelty([["d"]], popularity)
    assert novelty([["d"]], popularity, default=0.125) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="item_ids"):
        popularity_from_interactions([])


def test_gini_reference_values() -> None:
    assert gini(np.ones(7)) == pytest.approx(0.0, abs=1e-12)
    assert gini([0.0, 0.0, 0.0, 5.0]) == pytest.approx(3 / 4)
    assert gini([1.0, 2.0, 3.0, 4.0]) == pytest.approx(0.25)
    values = np.random.default_rng(0).exponential(size=50)
    pairwise = np.abs(values[:, None] - values[None, :]).sum() / (2 * values.size**2 * values.mean())
    assert gini(values) == pytest.approx(pairwise)
    with pytest.raises(ValueError, match="values"):
        gini(np.zeros(3))
    with pytest.raises(ValueError, match="values"):
        gini([-1.0, 2.0])


def test_exposure_gini_over_items_and_providers() -> None:
    catalog = ["a", "b", "c", "d"]
    assert exposure_gini([["a", "b"], ["c", "d"]], catalog) == pytest.approx(0.0, abs=1e-12)
    assert exposure_gini([["a"]] * 5, catalog) == pytest.approx(3 / 4)
    np.testing.assert_allclose(position_weights(3, True), [1.0, 1 / np.log2(3), 0.5])
    exposure = item_exposure([["a", "b", "c"], ["c"]], position_weighted=True)
    assert exposure == pytest.approx({"a": 1.0, "b": 1 / np.log2(3), "c": 1.5})
    # a and b (provider p) always above c and d (provider q): equal with counts, not weighted
    slates = [["a", "c"], ["b", "d"]]
    providers = {"a": "p", "b": "p", "c": "q", "d": "q"}
    assert provider_exposure_gini(slates, providers) == pytest.approx(0.0, abs=1e-12)
    weighted = provider_exposure_gini(slates, providers, position_weighted=True)
    total_p, total_q = 2.0, 2 / np.log2(3)
    assert weighted == pytest.approx((total_p - total_q) / (2 * (total_p + total_q)))
    assert provider_exposure_gini([["a"]], {"a": "p", "x": "q"}) == pytest.approx(0.5)


def test_expected_calibration_error() -> None:
    assert expected_calibration_error([0.25] * 4, [1, 0, 0, 0]) == pytest.approx(0.0)
    # bin 1: predicted 0.1, observed 0 -> 0.1; bin 9: predicted 0.9, observed 0.5 -> 0.4
    assert expected_calibration_error([0.1, 0.1, 0.9, 0.9], [0, 0, 1, 0]) == pytest.approx(0.25)
    counts, mean_pred, mean_obs = calibration_bins([0.0, 1.0, 0.55], [0, 1, 1], n_bins=2)
    np.testing.assert_array_equal(counts, [1, 2])
    np.testing.assert_allclose(mean_pred, [0.0, 0.775])
    np.testing.assert_allclose(mean_obs, [0.0, 1.0])
    with pytest.raises(ValueError, match="predicted"):
        expected_calibration_error([1.2], [1])
    with pytest.raises(ValueError, match="observed"):
        expected_calibration_error([0.2, 0.3], [1])
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error([0.2], [1], n_bins=0)
