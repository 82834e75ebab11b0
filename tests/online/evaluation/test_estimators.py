"""Bandit estimators: hand-computed values, validation, bootstrap behaviour, known truth."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from online.evaluation import (
    Estimate,
    bootstrap_ratio,
    doubly_robust,
    ips,
    replay,
    replay_positions,
    snips,
)

REWARDS = np.array([1.0, 0.0, 1.0])
PSCORES = np.array([0.5, 0.5, 0.25])
EVAL = np.array([1.0, 0.0, 0.5])  # weights 2, 0, 2


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_ips_snips_dr_hand_computed() -> None:
    assert ips(REWARDS, PSCORES, EVAL, rng=rng()).value == pytest.approx(4 / 3)
    assert snips(REWARDS, PSCORES, EVAL, rng=rng()).value == pytest.approx(1.0)
    dr = doubly_robust(REWARDS, PSCORES, EVAL, np.full(3, 0.5), np.full(3, 0.6), rng=rng())
    # terms: 0.6 + 2 * 0.5, 0.6 + 0, 0.6 + 2 * 0.5
    assert dr.value == pytest.approx(3.8 / 3)
    assert (dr.name, dr.n) == ("dr", 3)


def test_clipped_ips_caps_weights() -> None:
    assert ips(REWARDS, PSCORES, EVAL, rng=rng(), clip=1.5).value == pytest.approx(1.0)
    with pytest.raises(ValueError, match="clip"):
        ips(REWARDS, PSCORES, EVAL, rng=rng(), clip=0.0)


def test_ips_of_logging_policy_is_the_logged_mean_exactly() -> None:
    generator = rng(1)
    rewards = generator.binomial(1, 0.3, size=500).astype(float)
    pscores = generator.uniform(0.05, 1.0, size=500)
    estimate = ips(rewards, pscores, pscores, rng=generator)
    assert estimate.value == rewards.mean()
    assert snips(rewards, pscores, pscores, rng=generator).value == pytest.approx(rewards.mean(), abs=1e-12)


def test_replay_counts_only_matching_rounds() -> None:
    estimate = replay([1.0, 0.0, 1.0, 1.0], [0, 1, 2, 0], [0, 1, 0, 1], rng=rng())
    assert (estimate.name, estimate.value, estimate.n) == ("replay", 0.5, 2)
    none = replay([1.0, 0.0], [0, 1], [1, 0], rng=rng())
    assert none.n == 0 and np.isnan(none.value) and np.isnan(none.ci_low)


def test_replay_positions_matches_item_at_its_position() -> None:
    rewards = [1.0, 0.0, 1.0, 1.0, 1.0]
    items = [3, 4, 5, 6, 7]
    positions = [0, 1, 2, 0, 3]
    slates = [[3, 9, 8], [4, 9, 8], [9, 8, 5], [1, 6, -1], [7, 1, 2]]
    estimate = replay_positions(rewards, items, positions, slates, rng=rng())
    # row 0 matches (3 at 0); row 1: 4 is at 0, not 1; row 2 matches; row 3: 6 at 1, not 0;
    # row 4: position 3 is beyond the slate.
    assert (estimate.value, estimate.n) == (1.0, 2)
    with pytest.raises(ValueError, match="logged_items"):
        replay_positions(rewards, [-1, 4, 5, 6, 7], positions, slates, rng=rng())


def test_bootstrap_is_seeded_and_brackets_the_value() -> None:
    data = rng(2).normal(1.0, 2.0, size=400)
    first = bootstrap_ratio(data, np.ones_like(data), rng=rng(7), n_bootstrap=300)
    second = bootstrap_ratio(data, np.ones_like(data), rng=rng(7), n_bootstrap=300)
    other = bootstrap_ratio(data, np.ones_like(data), rng=rng(8), n_bootstrap=300)
    assert first == second and first != other
    value, low, high = first
    assert low < value < high
    # percentile interval of a mean ~ +-1.96 sd / sqrt(n)
    assert (high - low) / 2 == pytest.approx(1.96 * data.std() / np.sqrt(data.size), rel=0.15)


def test_bootstrap_of_constant_terms_is_degenerate() -> None:
    estimate = ips(np.ones(50), np.full(50, 0.5), np.full(50, 0.5), rng=rng(), n_bootstrap=50, interval="percentile")
    assert estimate.ci_low == estimate.value == estimate.ci_high == 1.0


def test_cluster_bootstrap_resamples_whole_clusters() -> None:
    data = rng(3).normal(size=60)
    plain = bootstrap_ratio(data, np.ones(60), rng=rng(5), n_bootstrap=200)
    # each observation copied 3 times in one cluster: same draws over the same 60 units
    tripled = bootstrap_ratio(
        np.repeat(data, 3), np.ones(180), rng=rng(5), n_bootstrap=200, clusters=np.repeat(np.arange(60), 3)
    )
    np.testing.assert_allclose(tripled, plain, rtol=1e-12)
    naive = bootstrap_ratio(np.repeat(data, 3), np.ones(180), rng=rng(5), n_bootstrap=200)
    assert naive[2] - naive[1] < 0.8 * (plain[2] - plain[1])


def test_bootstrap_chunks_cover_all_replicates(monkeypatch: pytest.MonkeyPatch) -> None:
    import online.evaluation.bootstrap as bootstrap

    data = rng(4).normal(size=100)
    monkeypatch.setattr(bootstrap, "CHUNK_ELEMENTS", 700)  # 7 replicates per chunk
    value, low, high = bootstrap.bootstrap_ratio(data, np.ones(100), rng=rng(1), n_bootstrap=50)
    assert value == pytest.approx(data.mean()) and low < value < high


def test_estimate_helpers() -> None:
    estimate = Estimate("ips", 0.5, 0.4, 0.7, 10)
    assert estimate.half_width == pytest.approx(0.15)
    assert estimate.covers(0.4) and not estimate.covers(0.71)


BAD_INPUTS: list[tuple[str, Callable[[], Any]]] = [
    ("rewards", lambda: ips([1.0, np.nan], [0.5, 0.5], [0.5, 0.5], rng=rng())),
    ("pscores", lambda: ips([1.0, 1.0], [0.5], [0.5, 0.5], rng=rng())),
    ("pscores", lambda: ips([1.0, 1.0], [0.0, 0.5], [0.5, 0.5], rng=rng())),
    ("pscores", lambda: snips([1.0, 1.0], [1.5, 0.5], [0.5, 0.5], rng=rng())),
    ("eval_probs", lambda: ips([1.0, 1.0], [0.5, 0.5], [0.5, -0.1], rng=rng())),
    ("rewards", lambda: ips([[1.0]], [[0.5]], [[0.5]], rng=rng())),
    ("rewards", lambda: ips([], [], [], rng=rng())),
    ("q_hat_logged", lambda: doubly_robust([1.0], [0.5], [0.5], [np.inf], [0.1], rng=rng())),
    ("q_hat_expected", lambda: doubly_robust([1.0], [0.5], [0.5], [0.1], [0.1, 0.2], rng=rng())),
    ("n_bootstrap", lambda: ips([1.0], [0.5], [0.5], rng=rng(), n_bootstrap=0)),
    ("confidence", lambda: ips([1.0], [0.5], [0.5], rng=rng(), confidence=1.0)),
    ("clusters", lambda: ips([1.0, 0.0], [0.5, 0.5], [0.5, 0.5], rng=rng(), clusters=[0])),
    ("logged_actions", lambda: replay([1.0], [0.5], [0], rng=rng())),
    ("evaluated_slates", lambda: replay_positions([1.0], [0], [0], [[0], [1]], rng=rng())),
]


@pytest.mark.parametrize(("field", "call"), BAD_INPUTS)
def test_invalid_inputs_name_the_field(field: str, call: Callable[[], Any]) -> None:
    with pytest.raises(ValueError, match=field):
        call()


def _synthetic_log(n: int, seed: int) -> dict[str, np.ndarray]:
    """Uniform logging over 4 actions in 3 contexts; target policy prefers action x."""
    generator = np.random.default_rng(seed)
    theta = np.array([[0.6, 0.2, 0.1, 0.3], [0.1, 0.5, 0.2, 0.2], [0.2, 0.1, 0.7, 0.4]])
    target = np.full((3, 4), 0.1)
    target[np.arange(3), np.arange(3)] = 0.7
    x = generator.integers(0, 3, size=n)
    a = generator.integers(0, 4, size=n)
    r = generator.binomial(1, theta[x, a]).astype(float)
    q_model = theta + 0.1  # a biased reward model
    return {
        "truth": np.array((target * theta).sum(axis=1).mean()),  # contexts are uniform
        "rewards": r,
        "pscores": np.full(n, 0.25),
        "eval_probs": target[x, a],
        "q_logged": q_model[x, a],
        "q_expected": (target * q_model).sum(axis=1)[x],
        "greedy": np.argmax(target, axis=1)[x],
        "greedy_truth": np.array(theta[np.arange(3), np.arange(3)].mean()),
        "actions": a,
    }


def test_intervals_cover_the_known_truth() -> None:
    log = _synthetic_log(20_000, seed=11)
    truth = float(log["truth"])
    args = (log["rewards"], log["pscores"], log["eval_probs"])
    estimates = [
        ips(*args, rng=rng(1)),
        snips(*args, rng=rng(1)),
        doubly_robust(*args, log["q_logged"], log["q_expected"], rng=rng(1)),
    ]
    for estimate in estimates:
        assert estimate.covers(truth), estimate
        assert estimate.half_width < 0.02, estimate
    greedy = replay(log["rewards"], log["actions"], log["greedy"], rng=rng(1))
    assert greedy.covers(float(log["greedy_truth"])), greedy


def test_ips_interval_coverage_rate_is_near_nominal() -> None:
    truth = float(_synthetic_log(10, seed=0)["truth"])
    covered = [
        ips(log["rewards"], log["pscores"], log["eval_probs"], rng=rng(seed), n_bootstrap=200).covers(truth)
        for seed in range(40)
        for log in [_synthetic_log(800, seed=100 + seed)]
    ]
    # nominal 95%; fewer than 32 of 40 would have probability < 0.001
    assert sum(covered) >= 32
