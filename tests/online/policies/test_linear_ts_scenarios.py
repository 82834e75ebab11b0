"""Linear TS across scenarios: shared user state, learned per-scenario offsets, codec v2."""

import struct

import numpy as np
import pytest

from online.codec import StateCodecError
from online.policies.base import FeedbackBatch, RankContext
from online.policies.linear_ts import LinearStats, LinearThompsonSampling, LinearTSParams, PopulationStats

D = 4


def batch(users: list[str], scenarios: list[str], x: np.ndarray, exposures: np.ndarray,
          rewards: np.ndarray) -> FeedbackBatch:
    m = len(users)
    return FeedbackBatch.from_rows(users, [f"i{n}" for n in range(m)], [f"r{n}" for n in range(m)], scenarios,
                                   np.zeros(m, dtype=np.int64), exposures, rewards, x, np.zeros(m))


def world(rng: np.random.Generator, n_users: int, rows_per_user: int, scenarios: list[str],
          offsets: dict[str, np.ndarray], theta_pop: np.ndarray, user_std: float = 0.3,
          noise_std: float = 0.1) -> tuple[FeedbackBatch, dict[str, np.ndarray]]:
    """Exposure rows with their (Gaussian) rewards: r = x . (theta_u + delta_s) + noise."""
    thetas = {f"u{u}": theta_pop + user_std * rng.standard_normal(D) for u in range(n_users)}
    users = [f"u{u}" for u in range(n_users) for _ in range(rows_per_user)]
    chosen = [scenarios[k] for k in rng.integers(0, len(scenarios), len(users))]
    x = rng.standard_normal((len(users), D)) / np.sqrt(D)
    pairs = enumerate(zip(users, chosen, strict=True))
    mean = np.array([x[i] @ (thetas[u] + offsets.get(s, 0.0)) for i, (u, s) in pairs])
    rewards = mean + noise_std * rng.standard_normal(len(users))
    return batch(users, chosen, x, np.ones(len(users)), rewards), thetas


def context(scenario: str, x: np.ndarray) -> RankContext:
    return RankContext("u", scenario, [f"i{n}" for n in range(len(x))], x)


PARAMS = dict(noise_var=0.01, user_prior_precision=1 / 0.3**2, offset_prior_precision=1.0)


def test_population_fit_is_the_joint_ridge_solution() -> None:
    rng = np.random.default_rng(0)
    policy = LinearThompsonSampling(LinearTSParams(scenario_offsets=("a", "b"), **PARAMS))
    data, _ = world(rng, 30, 20, ["a", "b", "c"], {"a": np.ones(D) * 0.2, "b": -np.ones(D) * 0.3}, np.ones(D) * 0.1)
    pop, _ = policy.learn(policy.init_global(D), {}, data)
    theta, offsets = policy.population_fit(pop)
    # brute force: stacked features [x, x 1{s=a}, x 1{s=b}], ridge with the three prior precisions
    scen = np.asarray(data.scenarios)
    z = np.hstack([data.features] + [data.features * (scen == s)[:, None] for s in ("a", "b")])
    p = policy.params
    prior = np.diag([p.pop_prior_precision] * D + [p.offset_prior_precision] * 2 * D)
    joint = np.linalg.solve(prior + z.T @ z / p.noise_var, z.T @ data.rewards / p.noise_var)
    np.testing.assert_allclose(np.concatenate([theta, offsets["a"], offsets["b"]]), joint, atol=1e-10)
    assert set(offsets) == {"a", "b"}  # "c" has no offset: its rows are in the pooled sums only


def test_feedback_in_one_scenario_warms_up_another() -> None:
    """A user with feedback only in "a" gets means in "b" closer to their true ones than the
    prior's (a new user's), for every one of 20 users."""
    rng = np.random.default_rng(1)
    offsets = {"a": np.array([0.3, 0, 0, 0]), "b": np.array([0, -0.3, 0, 0])}
    policy = LinearThompsonSampling(LinearTSParams(scenario_offsets=("a", "b"), **PARAMS))
    population, _ = world(rng, 200, 10, ["a", "b"], offsets, np.full(D, 0.2))
    pop, _ = policy.learn(policy.init_global(D), {}, population)
    probe = rng.standard_normal((50, D)) / np.sqrt(D)
    for user in range(20):
        theta_u = np.full(D, 0.2) + 0.3 * rng.standard_normal(D)
        x = rng.standard_normal((40, D)) / np.sqrt(D)
        rewards = x @ (theta_u + offsets["a"]) + 0.1 * rng.standard_normal(40)
        _, states = policy.learn(pop, {}, batch(["me"] * 40, ["a"] * 40, x, np.ones(40), rewards))
        learned = policy.sample_scores(pop, states["me"], context("b", probe), rng, 1).mean
        prior = policy.sample_scores(pop, None, context("b", probe), rng, 1).mean
        truth = probe @ (theta_u + offsets["b"])
        assert np.mean((learned - truth) ** 2) < np.mean((prior - truth) ** 2), user


def test_scenario_offset_ranks_a_different_scenario_better_than_a_shared_model() -> None:
    """In "ad_slot" everybody prefers another item direction: the learned offset points that
    way, and its means rank ad_slot candidates with lower regret than a shared-only model."""
    rng = np.random.default_rng(2)
    shift = np.array([0.0, 0.0, 0.6, -0.6])
    data, thetas = world(rng, 100, 30, ["feed", "feed", "ad_slot"], {"ad_slot": shift}, np.full(D, 0.1))
    with_offsets = LinearThompsonSampling(LinearTSParams(scenario_offsets=("ad_slot", "feed"), **PARAMS))
    shared = LinearThompsonSampling(LinearTSParams(**PARAMS))
    learned = {}
    for name, policy in (("offsets", with_offsets), ("shared", shared)):
        pop, users = policy.learn(policy.init_global(D), {}, data)
        learned[name] = (policy, pop, users)
    delta = with_offsets.scenario_offset(learned["offsets"][1], "ad_slot")
    assert delta is not None and delta @ shift / (np.linalg.norm(delta) * np.linalg.norm(shift)) > 0.9
    regret = {(name, scenario): 0.0 for name in learned for scenario in ("feed", "ad_slot")}
    for user, theta_u in thetas.items():
        candidates = rng.standard_normal((20, D)) / np.sqrt(D)
        for scenario, offset in (("feed", 0.0), ("ad_slot", shift)):
            truth = candidates @ (theta_u + offset)
            for name, (policy, pop, users) in learned.items():
                mean = policy.sample_scores(pop, users[user], context(scenario, candidates), rng, 1).mean
                regret[name, scenario] += truth.max() - truth[int(np.argmax(mean))]
    assert regret["offsets", "ad_slot"] < 0.5 * regret["shared", "ad_slot"], regret
    # in the feed (no shift, 2/3 of the data) the offset model is no worse either
    assert regret["offsets", "feed"] <= 1.05 * regret["shared", "feed"], regret


def test_without_offsets_configured_scenarios_change_nothing() -> None:
    rng = np.random.default_rng(3)
    data, _ = world(rng, 10, 8, ["a", "b"], {"b": np.ones(D)}, np.zeros(D))
    plain = LinearThompsonSampling(LinearTSParams(**PARAMS))
    other = LinearThompsonSampling(LinearTSParams(scenario_offsets=("zzz",), **PARAMS))
    (g1, u1), (g2, u2) = plain.learn(plain.init_global(D), {}, data), other.learn(other.init_global(D), {}, data)
    np.testing.assert_array_equal(g1.gram_upper, g2.gram_upper)
    np.testing.assert_array_equal(g1.response, g2.response)
    for user in u1:
        np.testing.assert_array_equal(u1[user].response, u2[user].response)  # type: ignore[union-attr]
    np.testing.assert_array_equal(plain.population_mean(g1), other.population_mean(g2))


def test_population_sums_commute_across_batch_splits() -> None:
    rng = np.random.default_rng(4)
    policy = LinearThompsonSampling(LinearTSParams(scenario_offsets=("a", "b"), **PARAMS))
    data, _ = world(rng, 10, 10, ["a", "b", "c"], {"a": np.ones(D)}, np.zeros(D))
    whole, _ = policy.learn(policy.init_global(D), {}, data)
    order = rng.permutation(len(data))
    split = policy.init_global(D)
    for part in np.array_split(order, 3):
        split, _ = policy.learn(split, {}, data.select(part))
    assert isinstance(whole, PopulationStats) and isinstance(split, PopulationStats)
    assert set(whole.scenarios) == set(split.scenarios) == {"a", "b"}
    for name in ("a", "b"):
        np.testing.assert_allclose(whole.scenarios[name].gram_upper, split.scenarios[name].gram_upper)
        np.testing.assert_allclose(whole.scenarios[name].response, split.scenarios[name].response)
    np.testing.assert_allclose(whole.response, split.response)
    assert whole.reward_total == pytest.approx(split.reward_total)


def test_codec_round_trip_and_versions() -> None:
    rng = np.random.default_rng(5)
    policy = LinearThompsonSampling(LinearTSParams(scenario_offsets=("ad_slot", "feed"), **PARAMS))
    data, _ = world(rng, 5, 6, ["feed", "ad_slot"], {}, np.zeros(D))
    pop, users = policy.learn(policy.init_global(D), {}, data)
    decoded = policy.decode_global(policy.encode_global(pop))
    assert isinstance(pop, PopulationStats)
    assert set(decoded.scenarios) == {"ad_slot", "feed"}
    for name, stats in pop.scenarios.items():
        np.testing.assert_array_equal(decoded.scenarios[name].gram_upper, stats.gram_upper)
        assert decoded.scenarios[name].n_exposures == stats.n_exposures
    user = users["u0"]
    assert user is not None
    blob = policy.encode_user(user)
    assert len(blob) == 24 + 4 * (D * (D + 1) // 2 + D)  # float32 sums; the size does not grow
    np.testing.assert_array_equal(policy.decode_user(blob).response, user.response)
    # a version-1 blob (header + one set of sums) decodes, without scenario sums
    v1 = struct.pack("<4sBBHdd", b"SLTS", 1, 2, D, 3.0, 1.0) + np.arange(D * (D + 1) // 2 + D, dtype="<f8").tobytes()
    old = policy.decode_global(v1)
    assert old.scenarios == {} and old.n_exposures == 3.0
    newer = bytearray(policy.encode_global(pop))
    newer[4] = 9
    with pytest.raises(StateCodecError, match="version 9 is newer than 3"):
        policy.decode_global(bytes(newer))
    with pytest.raises(StateCodecError, match=r"truncated|wrong length"):
        policy.decode_global(policy.encode_global(pop)[:-5])


def test_invalid_offset_params_are_named() -> None:
    with pytest.raises(ValueError, match="duplicates"):
        LinearTSParams(scenario_offsets=("a", "a"))
    with pytest.raises(ValueError, match="offset_prior_precision"):
        LinearTSParams(offset_prior_precision=0.0)
    assert isinstance(LinearThompsonSampling().init_global(D), LinearStats)


def test_retrieval_vector_carries_the_scenario_offset_that_scoring_uses() -> None:
    rng = np.random.default_rng(4)
    policy = LinearThompsonSampling(LinearTSParams(scenario_offsets=("ad",), **PARAMS))
    data, _ = world(rng, 40, 20, ["feed", "ad"], {"ad": np.array([0.0, 0.0, 0.0, 0.8])}, np.full(D, 0.1))
    pop, users = policy.learn(policy.init_global(D), {}, data)
    user = users["u0"]
    shared = policy.user_vector(pop, user)
    offset = policy.scenario_offset(pop, "ad")
    assert offset is not None and offset[3] > 0.3  # learned
    np.testing.assert_allclose(policy.user_vector(pop, user, "ad"), shared + offset)
    np.testing.assert_allclose(policy.user_vector(pop, user, "feed"), shared)  # no offset of its own
    # the retrieval vector is the mean sample_scores ranks by
    probe = rng.standard_normal((30, D))
    np.testing.assert_allclose(probe @ policy.user_vector(pop, user, "ad"),
                               policy.sample_scores(pop, user, context("ad", probe), rng, 1).mean)
