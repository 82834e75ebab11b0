"""Linear Thompson sampling: commuting updates, shrinkage to the population, state size."""

from typing import Literal

import numpy as np
import pytest

from online.policies.base import FeedbackBatch
from online.policies.linear_ts import LinearStats, LinearThompsonSampling, LinearTSParams


def batch(rng: np.random.Generator, users: list[str], exposures: list[float], rewards: list[float],
          dim: int = 6) -> FeedbackBatch:
    m = len(users)
    return FeedbackBatch.from_rows(
        tuple(users), tuple(f"i{n}" for n in range(m)), tuple(f"r{n}" for n in range(m)),
        ("feed",) * m, np.zeros(m, dtype=np.int64), np.asarray(exposures), np.asarray(rewards),
        rng.standard_normal((m, dim)), np.arange(m, dtype=np.float64),
    )


def test_updates_commute_clicks_before_impressions() -> None:
    policy = LinearThompsonSampling()
    full = batch(np.random.default_rng(0), ["a", "b", "a", "a", "b"], [1, 1, 0, 1, 0], [0, 0, 1, 0, 1])
    reordered_rows = [4, 2, 0, 3, 1]
    reordered = FeedbackBatch.from_rows(
        tuple(full.user_ids[i] for i in reordered_rows), tuple(full.item_ids[i] for i in reordered_rows),
        tuple(full.request_ids[i] for i in reordered_rows), tuple(full.scenarios[i] for i in reordered_rows),
        full.positions[reordered_rows], full.exposures[reordered_rows], full.rewards[reordered_rows],
        full.features[reordered_rows], full.times_s[reordered_rows],
    )
    g1, u1 = policy.learn(policy.init_global(6), {}, full)
    g2, u2 = policy.learn(policy.init_global(6), {}, reordered)
    np.testing.assert_allclose(g1.gram, g2.gram)
    np.testing.assert_allclose(g1.response, g2.response)
    for user in ("a", "b"):
        assert u1[user] is not None and u2[user] is not None
        np.testing.assert_allclose(u1[user].gram, u2[user].gram)  # type: ignore[union-attr]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_split_batches_equal_one_batch(dtype: Literal["float64", "float32"]) -> None:
    """Sums commute; with float32 user sums each batch rounds a user's sums to float32 (and the
    population adds exactly what the users' sums changed by), so a split agrees to float32
    precision of the largest sum."""
    policy = LinearThompsonSampling(LinearTSParams(user_state_dtype=dtype))
    full = batch(np.random.default_rng(1), ["a"] * 6, [1, 1, 1, 0, 0, 1], [0, 0, 0, 1, 1, 0])
    g_one, u_one = policy.learn(policy.init_global(6), {}, full)
    half = {k: getattr(full, k) for k in ("user_ids", "item_ids", "request_ids", "scenarios")}
    arrays = {k: getattr(full, k) for k in ("positions", "exposures", "rewards", "features", "times_s")}
    first = FeedbackBatch.from_rows(**{k: v[:3] for k, v in half.items()}, **{k: v[:3] for k, v in arrays.items()})
    second = FeedbackBatch.from_rows(**{k: v[3:] for k, v in half.items()}, **{k: v[3:] for k, v in arrays.items()})
    g, u = policy.learn(policy.init_global(6), {}, first)
    g, u = policy.learn(g, u, second)
    atol = 0.0 if dtype == "float64" else 4 * 2.0**-24 * np.abs(g_one.gram).max()
    np.testing.assert_allclose(g.gram, g_one.gram, atol=atol)
    np.testing.assert_allclose(u["a"].gram, u_one["a"].gram, atol=atol)  # type: ignore[union-attr]


def test_new_user_mean_is_the_population_mean() -> None:
    policy = LinearThompsonSampling()
    rng = np.random.default_rng(2)
    g, _ = policy.learn(policy.init_global(6), {}, batch(rng, ["a"] * 50, [1] * 50, list(rng.random(50))))
    np.testing.assert_allclose(policy.user_vector(g, None), policy.population_mean(g))


def test_user_posterior_moves_from_population_towards_own_data() -> None:
    policy = LinearThompsonSampling(LinearTSParams(user_prior_precision=5.0))
    dim = 4
    x = np.eye(dim)[[0] * 40]
    pop = LinearStats.from_gram(x.T @ x, x.T @ np.full(40, 0.1), 40.0, 4.0)
    user = LinearStats.from_gram(x.T @ x, x.T @ np.full(40, 0.9), 40.0, 36.0)
    pop_mean = policy.population_mean(pop)[0]
    user_mean = policy.user_vector(pop, user)[0]
    assert pop_mean < user_mean < 0.9


def test_posterior_std_shrinks_with_data() -> None:
    policy = LinearThompsonSampling()
    from online.policies.base import RankContext

    context = RankContext("u", "feed", ["i0"], np.array([[1.0, 0.0, 0.0]]))
    empty = policy.init_global(3)
    x = np.array([[1.0, 0.0, 0.0]] * 20)
    user = LinearStats.from_gram(x.T @ x, np.zeros(3), 20.0, 0.0)
    rng = np.random.default_rng(0)
    before = policy.sample_scores(empty, None, context, rng, 4).std[0]
    after = policy.sample_scores(empty, user, context, rng, 4).std[0]
    assert after < before


def test_user_state_at_d32_fits_in_2_5_kb() -> None:
    policy = LinearThompsonSampling()
    rng = np.random.default_rng(3)
    _, users = policy.learn(policy.init_global(33), {}, batch(rng, ["a"] * 10, [1] * 10, [0] * 10, dim=33))
    blob = policy.encode_user(users["a"])  # type: ignore[arg-type]
    assert len(blob) == 24 + 4 * (33 * 34 // 2 + 33) == 2_400 <= 2.5 * 1024
    wide = LinearThompsonSampling(LinearTSParams(user_state_dtype="float64"))
    assert len(wide.encode_user(users["a"])) == 4_776  # type: ignore[arg-type]
