"""Hybrid linear TS: the joint population fit, item effects, commutative sums, forgetting, codec."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from online.codec import StateCodecError
from online.policies.base import FeedbackBatch, RankContext
from online.policies.hybrid_stats import HybridGlobal, HybridUser
from online.policies.hybrid_ts import HybridThompsonSampling, HybridTSParams
from online.policies.linear_ts import LinearThompsonSampling, LinearTSParams

D = 4


def rows(users: Sequence[str], items: Sequence[str], x: np.ndarray, exposures: np.ndarray, rewards: np.ndarray,
         times: np.ndarray | None = None) -> FeedbackBatch:
    m = len(items)
    return FeedbackBatch.from_rows(
        users, items, [f"r{n}" for n in range(m)], ["feed"] * m, np.zeros(m, dtype=np.int64),
        exposures.astype(float), rewards.astype(float), x, np.zeros(m) if times is None else times,
    )


def random_log(rng: np.random.Generator, m: int = 60, n_items: int = 6) -> FeedbackBatch:
    """m rows: each item has one fixed feature vector; exposures and clicks mixed."""
    vectors = rng.normal(size=(n_items, D))
    item = rng.integers(n_items, size=m)
    exposures = rng.integers(0, 2, size=m).astype(float)
    rewards = (1 - exposures) * rng.integers(0, 2, size=m)
    return rows([f"u{n % 3}" for n in range(m)], [f"i{i}" for i in item], vectors[item], exposures, rewards,
                np.arange(m, dtype=float) * 10.0)


def test_population_fit_equals_the_joint_normal_equations() -> None:
    rng = np.random.default_rng(0)
    policy = HybridThompsonSampling(HybridTSParams(item_prior_precision=3.0, noise_var=0.5, estimate_item_prior=False))
    batch = random_log(rng)
    state, _ = policy.learn(policy.init_global(D), {}, batch)
    p, ids = policy.params, state.items.ids
    n = len(ids)
    design = np.zeros((len(batch), D + n))  # r = x . theta + b_item, fitted on exposure and reward rows
    design[:, :D] = batch.features
    design[np.arange(len(batch)), D + np.array([ids.index(i) for i in batch.item_ids])] = 1.0
    shown = batch.exposures > 0
    gram = design[shown].T @ design[shown] / p.noise_var
    response = design.T @ batch.rewards / p.noise_var
    prior = np.diag([p.pop_prior_precision] * D + [p.item_prior_precision] * n)
    joint = np.linalg.solve(prior + gram, response)
    np.testing.assert_allclose(policy.population_mean(state), joint[:D], rtol=1e-9, atol=1e-12)
    effect, variance = policy.item_effects(state, list(ids))
    np.testing.assert_allclose(effect, joint[D:], rtol=1e-9, atol=1e-12)
    exposures = np.array([batch.exposures[[i == item for i in batch.item_ids]].sum() for item in ids])
    np.testing.assert_allclose(variance, 1 / (p.item_prior_precision + exposures / p.noise_var))


def test_a_good_item_rises_for_everyone_and_a_cold_item_starts_from_its_text() -> None:
    policy = HybridThompsonSampling()
    x = np.tile(np.array([1.0, 0.0, 0.0, 1.0]), (400, 1))  # "good" and "plain" share one text vector
    items = ["good", "plain"] * 200
    users = [f"u{n % 40}" for n in range(400)]
    exposures = np.ones(400)
    shown = rows(users, items, x, exposures, np.zeros(400))
    clicks = rows(users[::2][:60], ["good"] * 60, x[:60], np.zeros(60), np.ones(60))
    state, _ = policy.learn(policy.init_global(D), {}, shown)
    state, _ = policy.learn(state, {}, clicks)
    context = RankContext("stranger", "feed", ["good", "plain", "cold"], np.tile(x[0], (3, 1)), 0.0)
    draws = policy.sample_scores(state, None, context, np.random.default_rng(1), 8)
    assert draws.mean[0] > draws.mean[1] + 0.05
    text_only = draws.mean[2]
    assert draws.mean[1] < text_only < draws.mean[0]  # the text's score, no item effect
    np.testing.assert_allclose(text_only, x[0] @ policy.population_mean(state))
    linear = LinearThompsonSampling()
    pooled, _ = linear.learn(linear.init_global(D), {}, shown)
    pooled, _ = linear.learn(pooled, {}, clicks)
    plain = linear.sample_scores(pooled, None, context, np.random.default_rng(1), 8)
    assert plain.mean[0] == pytest.approx(plain.mean[1])  # linear TS cannot tell them apart


def test_a_huge_item_prior_precision_is_linear_ts() -> None:
    rng = np.random.default_rng(2)
    batch = random_log(rng)
    hybrid = HybridThompsonSampling(HybridTSParams(item_prior_precision=1e12, estimate_item_prior=False))
    linear = LinearThompsonSampling(LinearTSParams())
    h_state, h_users = hybrid.learn(hybrid.init_global(D), {}, batch)
    l_state, l_users = linear.learn(linear.init_global(D), {}, batch)
    np.testing.assert_allclose(hybrid.population_mean(h_state), linear.population_mean(l_state), rtol=1e-6)
    for user in ("u0", "u1"):
        h_user, l_user = h_users[user], l_users[user]
        assert h_user is not None and l_user is not None
        np.testing.assert_allclose(hybrid.posterior(h_state, h_user)[0], linear.posterior(l_state, l_user)[0],
                                   rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("half_life_s", [None, 50.0])
def test_population_sums_do_not_depend_on_batch_order_or_split(half_life_s: float | None) -> None:
    policy = HybridThompsonSampling(HybridTSParams(half_life_s=half_life_s))
    batch = random_log(np.random.default_rng(3))
    whole, _ = policy.learn(policy.init_global(D), {}, batch)
    chronological = np.array_split(np.arange(len(batch)), 5)  # later batches decay the earlier sums
    shuffled = np.array_split(np.random.default_rng(4).permutation(len(batch)), 5)  # late rows too
    for parts in (chronological, shuffled):
        state = policy.init_global(D)
        for part in parts:
            state, _ = policy.learn(state, {}, batch.select(part))
        assert_same_population(policy, state, whole)


def assert_same_population(policy: HybridThompsonSampling, state: HybridGlobal, whole: HybridGlobal) -> None:
    assert state.as_of_s == whole.as_of_s
    np.testing.assert_allclose(state.pooled.gram_upper, whole.pooled.gram_upper, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(state.pooled.response, whole.pooled.response, rtol=1e-12, atol=1e-12)
    rows_of = [whole.items.ids.index(i) for i in state.items.ids]
    np.testing.assert_allclose(state.items.exposures, whole.items.exposures[rows_of], rtol=1e-12)
    np.testing.assert_allclose(state.items.features, whole.items.features[rows_of], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(policy.population_mean(state), policy.population_mean(whole), rtol=1e-9)


def test_forgetting_halves_the_weight_of_evidence_per_half_life() -> None:
    policy = HybridThompsonSampling(HybridTSParams(half_life_s=100.0))
    x = np.array([[1.0, 2.0, 0.0, 1.0]])
    first, users = policy.learn(policy.init_global(D), {}, rows(["u"], ["a"], x, np.ones(1), np.zeros(1),
                                                                np.array([1000.0])))
    later, users = policy.learn(first, users, rows(["u"], ["a"], x, np.zeros(1), np.ones(1), np.array([1200.0])))
    assert later.as_of_s == 1200.0
    np.testing.assert_allclose(later.pooled.gram, 0.25 * np.outer(x[0], x[0]))
    np.testing.assert_allclose(later.pooled.response, x[0])
    assert later.items.exposures.tolist() == [0.25] and later.items.rewards.tolist() == [1.0]
    user = users["u"]
    assert user is not None and user.as_of_s == 1200.0
    np.testing.assert_allclose(user.stats.gram, 0.25 * np.outer(x[0], x[0]))
    # scored an hour later the user's evidence has faded towards the population's
    now = policy.posterior(later, user, 1200.0)[0]
    hour = policy.posterior(later, user, 4800.0)[0]
    population = policy.population_mean(later)
    assert np.linalg.norm(hour - population) < 1e-6 < np.linalg.norm(now - population)
    never = HybridThompsonSampling()
    kept, _ = never.learn(never.learn(never.init_global(D), {}, rows(["u"], ["a"], x, np.ones(1), np.zeros(1),
                                                                     np.array([1000.0])))[0], {},
                          rows(["u"], ["a"], x, np.zeros(1), np.ones(1), np.array([1200.0])))
    np.testing.assert_allclose(kept.pooled.gram, np.outer(x[0], x[0]))


def test_codec_round_trip_and_hostile_blobs() -> None:
    policy = HybridThompsonSampling(HybridTSParams(half_life_s=60.0))
    state, users = policy.learn(policy.init_global(D), {}, random_log(np.random.default_rng(5)))
    blob = policy.encode_global(state)
    decoded = policy.decode_global(blob)
    assert policy.encode_global(decoded) == blob and decoded.as_of_s == state.as_of_s
    assert decoded.items.ids == state.items.ids
    user = users["u0"]
    assert user is not None
    assert policy.encode_user(policy.decode_user(policy.encode_user(user))) == policy.encode_user(user)
    empty = policy.decode_global(policy.encode_global(HybridGlobal.empty(D)))
    assert empty.as_of_s == float("-inf") and empty.items.ids == ()
    for bad in (blob[:-8], b"nonsense", policy.encode_user(user)):
        with pytest.raises(StateCodecError):
            policy.decode_global(bad)
    with pytest.raises(StateCodecError):
        policy.decode_user(blob)


def test_invariants_catch_broken_states() -> None:
    policy = HybridThompsonSampling()
    state, _ = policy.learn(policy.init_global(D), {}, random_log(np.random.default_rng(6)))
    policy.check_invariants(state, HybridUser(state.pooled))
    broken = HybridGlobal(state.pooled, type(state.items)(state.items.ids, -state.items.exposures,
                                                           state.items.rewards, state.items.features))
    with pytest.raises(ValueError, match="item counts"):
        policy.check_invariants(broken, None)


@pytest.mark.parametrize("field", ["item_prior_precision", "noise_var", "exploration", "half_life_s"])
def test_params_errors_name_the_field(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        HybridTSParams(**{field: 0.0})


def test_a_users_response_is_net_of_the_item_effects_known_when_learned() -> None:
    policy = HybridThompsonSampling()
    x = np.tile(np.array([1.0, 0.0, 0.0, 1.0]), (200, 1))
    state, _ = policy.learn(policy.init_global(D), {}, rows([f"u{n}" for n in range(200)], ["good", "plain"] * 100,
                                                            x, np.ones(200), np.zeros(200)))
    state, _ = policy.learn(state, {}, rows([f"u{n}" for n in range(80)], ["good"] * 80, x[:80], np.zeros(80),
                                            np.ones(80)))
    effect = policy.item_effects(state, ["good"])[0][0]
    assert effect > 0.05
    _, users = policy.learn(state, {}, rows(["fan", "fan"], ["good", "good"], x[:2], np.array([1.0, 0.0]),
                                            np.array([0.0, 1.0])))
    fan = users["fan"]
    assert fan is not None
    np.testing.assert_allclose(fan.stats.response, x[0] * (1.0 - effect))  # the click, less what the item explains
    assert fan.stats.reward_total == 1.0


def test_the_drift_detector_alarms_on_a_sustained_drop_and_not_on_noise() -> None:
    from online.policies.forgetting import DriftDetector

    rng = np.random.default_rng(8)
    steady, alarms = DriftDetector(), 0
    for _ in range(500):
        steady, alarm = steady.update(rng.binomial(200, 0.05) / 200, 3.0, 0.1, 10)
        alarms += alarm
    assert alarms == 0
    dropped = [steady.update(rng.binomial(200, 0.03) / 200, 3.0, 0.1, 10)[1]]
    for _ in range(30):
        steady, alarm = steady.update(rng.binomial(200, 0.03) / 200, 3.0, 0.1, 10)
        dropped.append(alarm)
    assert any(dropped) and steady.n < 31  # it alarmed, and restarted counting then


def test_a_drift_alarm_discounts_the_old_evidence_once() -> None:
    policy = HybridThompsonSampling(HybridTSParams(drift_threshold=0.5, drift_warmup=2, drift_keep=0.25))
    x = np.tile(np.array([1.0, 0.0, 0.0, 1.0]), (10, 1))
    state, users = policy.init_global(D), {}
    for step, rate in enumerate([0.5] * 4 + [0.0]):  # four batches at half the exposures clicked, then none
        times = np.full(20, float(step))
        clicks = np.array([1.0] * int(10 * rate) + [0.0] * (10 - int(10 * rate)))
        batch = rows(["u"] * 20, ["a"] * 20, np.vstack([x, x]), np.r_[np.ones(10), np.zeros(10)],
                     np.r_[np.zeros(10), clicks], times)
        before = state
        state, learned = policy.learn(state, users, batch)
        users |= learned
    assert state.clock == pytest.approx(2.0) and before.clock == 0.0  # log2(1 / 0.25) halvings
    np.testing.assert_allclose(state.items.exposures, [0.25 * 40 + 10])  # old kept at a quarter, this batch whole
    user = users["u"]
    assert user is not None and user.clock == state.clock
    np.testing.assert_allclose(user.stats.n_exposures, 0.25 * 40 + 10)
    stale = HybridUser(user.stats, user.as_of_s, 0.0)  # a user last learned before the alarm
    np.testing.assert_allclose(policy.posterior(state, stale)[0], policy.posterior(
        state, HybridUser(type(user.stats)(user.stats.gram_upper * 0.25, user.stats.response * 0.25), user.as_of_s,
                          state.clock))[0])


def test_the_item_prior_can_be_estimated_from_the_item_sums() -> None:
    rng = np.random.default_rng(9)
    n_items, x = 60, np.array([1.0, 0.0, 0.0, 1.0])
    quality = rng.normal(0.0, 0.1, size=n_items)  # item effects of std 0.1: precision 100, not the default 2,500
    items = [f"i{k}" for k in range(n_items)]
    shown = rows([f"u{k % 7}" for k in range(n_items * 100)], items * 100, np.tile(x, (n_items * 100, 1)),
                 np.ones(n_items * 100), np.zeros(n_items * 100))
    clicked = rng.random(n_items * 100) < np.clip(0.3 + np.tile(quality, 100), 0, 1)
    clicks = rows([f"u{k % 7}" for k in np.flatnonzero(clicked)], [items[k % n_items] for k in np.flatnonzero(clicked)],
                  np.tile(x, (int(clicked.sum()), 1)), np.zeros(int(clicked.sum())), np.ones(int(clicked.sum())))
    estimating = HybridThompsonSampling()  # the default: estimated
    state, _ = estimating.learn(estimating.init_global(D), {}, shown)
    state, _ = estimating.learn(state, {}, clicks)
    _, used = estimating.population_fit(state)
    assert 30 < used < 400
    fixed = HybridThompsonSampling(HybridTSParams(estimate_item_prior=False))
    assert fixed.population_fit(state)[1] == 2500.0
    spread = np.std(estimating.item_effects(state, items)[0]), np.std(fixed.item_effects(state, items)[0])
    assert spread[0] > spread[1]  # the estimated prior shrinks the item effects less
