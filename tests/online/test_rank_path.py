"""The ranking hot path: lazy id views, deferred std, linear TS draws against the closed form."""

import numpy as np
import pytest

from online.catalog import Catalog
from online.events import Item
from online.features import ItemFeatures
from online.policies.base import RankContext, ScoreDraws
from online.policies.linear_ts import LinearStats, LinearThompsonSampling
from online.slates import top_k


def test_id_view_reads_like_the_id_list() -> None:
    catalog = Catalog(dim=2)
    catalog.upsert([Item(item_id=f"i{n}", fields={"t": "x"}) for n in range(6)], np.ones((6, 2), np.float32))
    rows = np.array([4, 0, 5, 2])
    view, listed = catalog.id_view(rows), catalog.ids_of(rows)
    assert len(view) == 4 and list(view) == listed and view == listed
    assert [view[i] for i in range(-4, 4)] == [listed[i] for i in range(-4, 4)]
    assert view[1:3] == listed[1:3] and view[::-1] == listed[::-1]
    assert "i5" in view and "i1" not in view and view.index("i2") == 3
    with pytest.raises(IndexError):
        view[4]


def test_deferred_std_is_computed_for_the_indices_asked() -> None:
    asked: list[list[int]] = []

    def std_of(indices: np.ndarray) -> np.ndarray:
        asked.append(indices.tolist())
        return indices * 0.5

    draws = ScoreDraws(np.zeros((2, 5)), np.zeros(5), std_of=std_of)
    np.testing.assert_array_equal(draws.std_at(np.array([3, 1])), [1.5, 0.5])
    assert asked == [[3, 1]]
    np.testing.assert_array_equal(draws.std, [0.0, 0.5, 1.0, 1.5, 2.0])
    np.testing.assert_array_equal(draws.std_at(np.array([4])), [2.0])
    assert asked == [[3, 1], [0, 1, 2, 3, 4]]  # the full std is computed once, then reused
    with pytest.raises(ValueError, match="exactly one"):
        ScoreDraws(np.zeros((1, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="exactly one"):
        ScoreDraws(np.zeros((1, 2)), np.zeros(2), np.zeros(2), std_of=std_of)
    with pytest.raises(AttributeError):
        draws.mean = np.ones(5)  # type: ignore[misc]


def test_linear_ts_ranks_float32_features_as_it_ranks_float64() -> None:
    """The engine hands linear TS float32 features (`score_dtype`): the same seeded draws as
    from float64 features to float32 rounding, the same top-k per draw and the same std."""
    rng = np.random.default_rng(5)
    policy = LinearThompsonSampling()
    assert policy.score_dtype == np.float32
    dim, n, m = 33, 1000, 64
    x = rng.standard_normal((200, dim))
    user = LinearStats.from_gram(x.T @ x, x.T @ rng.random(200))
    pop = policy.init_global(dim)
    features = ItemFeatures().transform(rng.standard_normal((n, dim - 1)).astype(np.float32), None)
    single = ItemFeatures().transform(features[:, :-1].astype(np.float32), None, np.float32)
    assert single.dtype == np.float32 and np.array_equal(single, features)
    ids = [f"i{i}" for i in range(n)]
    wide = policy.sample_scores(pop, user, RankContext("u", "default", ids, features), np.random.default_rng(3), m)
    narrow = policy.sample_scores(pop, user, RankContext("u", "default", ids, single), np.random.default_rng(3), m)
    assert narrow.draws.dtype == np.float32 and narrow.mean.dtype == np.float32
    np.testing.assert_allclose(narrow.draws, wide.draws, rtol=0, atol=1e-5 * np.abs(wide.draws).max())
    np.testing.assert_allclose(narrow.mean, wide.mean, rtol=0, atol=1e-5 * np.abs(wide.mean).max())
    np.testing.assert_allclose(narrow.std_at(np.arange(10)), wide.std_at(np.arange(10)), rtol=1e-6)
    np.testing.assert_array_equal(top_k(narrow.draws, 10), top_k(wide.draws, 10))


def test_linear_ts_draws_match_the_closed_form() -> None:
    """Draws are x . theta_j with theta_j = mean + exploration L^-T z_j (z_j the seeded normal
    draws), C-contiguous [m, n]; std is exploration sqrt(x A^-1 x^T) per candidate."""
    rng = np.random.default_rng(4)
    policy = LinearThompsonSampling()
    dim, n, m = 5, 300, 16
    x = rng.standard_normal((40, dim))
    user = LinearStats.from_gram(x.T @ x, x.T @ rng.random(40))
    pop = policy.init_global(dim)
    features = rng.standard_normal((n, dim))
    context = RankContext("u", "default", [f"i{i}" for i in range(n)], features)
    draws = policy.sample_scores(pop, user, context, np.random.default_rng(9), m)
    p = policy.params
    precision = user.gram / p.noise_var + p.user_prior_precision * np.eye(dim)
    prior_mean = p.user_prior_precision * policy.population_mean(pop)
    mean = np.linalg.solve(precision, prior_mean + user.response / p.noise_var)
    factor = np.linalg.cholesky(precision)
    z = np.random.default_rng(9).standard_normal((dim, m))
    thetas = mean[:, None] + p.exploration * np.linalg.solve(factor.T, z)
    assert draws.draws.flags.c_contiguous and draws.draws.shape == (m, n) and draws.draws.dtype == np.float32
    exact = (features @ thetas).T  # the product in float64; the draws are float32: 1e-6 of the largest term
    largest_term = np.abs(features).max() * np.abs(thetas).sum(axis=0).max()
    np.testing.assert_allclose(draws.draws, exact, rtol=0, atol=1e-6 * largest_term)
    np.testing.assert_allclose(draws.mean, features @ mean, rtol=1e-10, atol=1e-12)
    covariance = np.linalg.inv(precision)
    expected_std = p.exploration * np.sqrt(np.einsum("ij,jk,ik->i", features, covariance, features))
    np.testing.assert_allclose(draws.std, expected_std, rtol=1e-10)
    np.testing.assert_allclose(draws.std_at(np.array([7, 3])), expected_std[[7, 3]], rtol=1e-10)


def test_row_lookups_with_unknown_inactive_single_and_no_ids() -> None:
    catalog = Catalog(dim=2)
    items = [Item(item_id=f"i{n}", fields={"t": "x"}, active=n != 2) for n in range(5)]
    catalog.upsert(items, np.ones((5, 2), np.float32))
    assert catalog.rows(["i3", "i0", "i2"]).tolist() == [3, 0, 2]
    assert catalog.rows(["i4"]).tolist() == [4] and catalog.rows([]).tolist() == []
    with pytest.raises(KeyError, match="'ghost'"):
        catalog.rows(["i1", "ghost"])
    assert catalog.active_rows(["i3", "ghost", "i2", "i1"]).tolist() == [3, 1]
    assert catalog.active_rows(["i2"]).tolist() == [] and catalog.active_rows([]).tolist() == []
    assert catalog.active_rows(["i0", "i4"]).tolist() == [0, 4]
