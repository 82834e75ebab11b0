"""Slate building and Monte Carlo propensities."""

from datetime import UTC, datetime

import numpy as np

from online.events import RankRequest
from online.policies.base import ScoreDraws
from online.slates import build_slate, position_propensities, top_k

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_top_k_orders_best_first() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [4.0, 3.0, 2.0, 1.0]])
    np.testing.assert_array_equal(top_k(scores, 2), [[1, 3], [0, 1]])
    np.testing.assert_array_equal(top_k(scores, 9), [[1, 3, 2, 0], [0, 1, 2, 3]])


def test_prefiltered_top_k_equals_a_full_sort() -> None:
    """The threshold path (many draws over many candidates) must give the exact top-k,
    including rows whose best items are far from the items best on average."""
    rng = np.random.default_rng(7)
    for m, n, k in [(64, 1000, 10), (8, 320, 10), (64, 1000, 1), (100, 3000, 25)]:
        scores = rng.normal(size=(m, n)) + 2.0 * rng.normal(size=n)
        scores[0] = -scores[0]  # one row ranks the candidates in the opposite order
        expected = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        np.testing.assert_array_equal(top_k(scores, k), expected)


def test_prefiltered_top_k_of_float32_scores_equals_a_full_sort() -> None:
    """float32 scores (linear TS's draws) sort as one packed key: exact, negative scores and
    rows of all-negative scores included, and equal scores in column order like a stable sort."""
    rng = np.random.default_rng(8)
    for m, n, k in [(64, 1000, 10), (8, 320, 10), (64, 1000, 1), (100, 3000, 25), (16, 4096, 3)]:
        scores = (rng.normal(size=(m, n)) + 2.0 * rng.normal(size=n)).astype(np.float32)
        scores[0] = -scores[0]
        scores[1] = -np.abs(scores[1]) - 5.0  # every score of the row negative
        scores[2, :: 7] = scores[2].max()  # ties at the top
        expected = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        got = top_k(scores, k)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, expected)


def test_deterministic_policy_has_propensity_one() -> None:
    draws = np.tile(np.array([0.1, 0.9, 0.5, 0.7]), (32, 1))
    np.testing.assert_array_equal(position_propensities(draws, 3), [1.0, 1.0, 1.0])


def test_uniform_random_propensities_average_one_over_n() -> None:
    rng = np.random.default_rng(0)
    n, k, m = 20, 3, 400
    estimates = np.array([position_propensities(rng.random((m, n)), k) for _ in range(200)])
    # each entry estimates 1/n; the mean over 200 slates has standard error ~ 0.0008
    np.testing.assert_allclose(estimates.mean(axis=0), 1 / n, atol=0.004)
    assert estimates.min() >= 1 / m


def test_build_slate_records_scores_and_exploration() -> None:
    request = RankRequest(request_id="r", user_id="u", k=2, time=T0)
    mean = np.array([0.9, 0.1, 0.5])
    draws = np.array([[0.0, 1.0, 0.8], [0.9, 0.1, 0.5]])
    slate = build_slate(request, ["a", "b", "c"], ScoreDraws(draws, mean, np.full(3, 0.1)),
                        "p", "p-r1-x", T0)
    assert [i.item_id for i in slate.items] == ["b", "c"]
    assert [i.explored for i in slate.items] == [True, False]
    assert [i.propensity for i in slate.items] == [0.5, 1.0]  # c is second in both draws
    assert slate.items[0].score == 1.0 and slate.items[0].mean == 0.1
