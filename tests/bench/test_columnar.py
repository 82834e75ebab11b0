"""The vectorised context-free path: unbiased on a known-truth log, agrees with the driver."""

import numpy as np
import pytest

from bench.columnar import ColumnarLog, estimate_terms, evaluate_context_free, round_terms
from online.policies import make_policy

N_ACTIONS, N_POSITIONS = 10, 3


def uniform_log(n: int, seed: int) -> tuple[ColumnarLog, np.ndarray]:
    """Uniform logging over actions and positions; click probability depends on the action."""
    rng = np.random.default_rng(seed)
    truth = np.linspace(0.02, 0.3, N_ACTIONS)
    actions = rng.integers(N_ACTIONS, size=n)
    positions = rng.integers(N_POSITIONS, size=n)
    rewards = (rng.random(n) < truth[actions]).astype(float)
    pscores = np.full(n, 1 / N_ACTIONS)  # the chance of this action at this (given) position
    return ColumnarLog(actions, positions, rewards, pscores, N_ACTIONS, N_POSITIONS), truth


def run(name: str, log: ColumnarLog, seed: int = 0, block: int = 50) -> dict:  # type: ignore[type-arg]
    ids = [f"i{a}" for a in range(N_ACTIONS)]
    return evaluate_context_free(log, make_policy(name), ids, np.ones((N_ACTIONS, 1)),
                                 rng=np.random.default_rng(seed), block=block, n_draws=512,
                                 n_bootstrap=300).estimates


def test_uniform_policy_on_a_uniform_log_estimates_the_logged_mean() -> None:
    log, _ = uniform_log(6000, seed=1)
    estimates = run("uniform_random", log)
    logged = log.rewards.mean()
    for name in ("ips", "snips", "dr"):
        assert estimates[name].ci_low <= logged <= estimates[name].ci_high, name


def test_a_learning_policy_beats_the_logging_policy_and_estimates_agree() -> None:
    log, truth = uniform_log(8000, seed=2)
    estimates = run("bernoulli_ts", log)
    assert estimates["dr"].value > log.rewards.mean()  # it learns to prefer the better actions
    assert estimates["dr"].value < truth.max()
    # IPS and DR estimate the same quantity: their intervals overlap
    assert estimates["ips"].ci_low <= estimates["dr"].ci_high and estimates["dr"].ci_low <= estimates["ips"].ci_high


def test_refuses_policies_with_user_state_and_bad_shapes() -> None:
    log, _ = uniform_log(10, seed=3)
    with pytest.raises(ValueError, match="per-user state"):
        run("linear_ts", log)
    with pytest.raises(ValueError, match="actions"):
        ColumnarLog(np.array([N_ACTIONS]), np.array([0]), np.array([0.0]), np.array([0.5]), N_ACTIONS, N_POSITIONS)


def test_exact_fast_path_equals_the_monte_carlo_reference() -> None:
    """Same log, same policy and schedule: the exact path's per-round terms equal the Monte Carlo
    reference's within its sampling error (q_logged exactly), and so do the estimates."""
    log, _ = uniform_log(3000, seed=4)
    ids, features = [f"i{a}" for a in range(N_ACTIONS)], np.ones((N_ACTIONS, 1))
    m = 40_000
    fast = round_terms(log, make_policy("bernoulli_ts"), ids, features, rng=np.random.default_rng(1), block=300,
                       propensity="exact", n_grid=128)
    slow = round_terms(log, make_policy("bernoulli_ts"), ids, features, rng=np.random.default_rng(2), block=300,
                       propensity="monte_carlo", n_draws=m)
    assert np.array_equal(fast.q_logged, slow.q_logged)
    sd = np.sqrt(fast.eval_probs * (1 - fast.eval_probs) / m) + 2e-4
    assert np.all(np.abs(fast.eval_probs - slow.eval_probs) < 5 * sd)
    assert np.allclose(fast.q_expected, slow.q_expected, atol=2e-3)
    # replay matches: Bernoulli(P) on the exact path, own sampled slates on the reference
    expected, spread = fast.eval_probs.sum(), np.sqrt((fast.eval_probs * (1 - fast.eval_probs)).sum())
    assert abs(fast.matches.sum() - expected) < 5 * spread and abs(slow.matches.sum() - expected) < 5 * spread
    quick = estimate_terms(log, fast, rng=np.random.default_rng(3), n_bootstrap=400)
    reference = estimate_terms(log, slow, rng=np.random.default_rng(3), n_bootstrap=400, shared_bootstrap=False)
    for name in ("ips", "snips", "dr"):
        assert quick[name].value == pytest.approx(reference[name].value, rel=0.02), name


def test_shared_bootstrap_gives_the_reference_values_and_intervals() -> None:
    log, _ = uniform_log(4000, seed=5)
    terms = round_terms(log, make_policy("bernoulli_ts"), [f"i{a}" for a in range(N_ACTIONS)],
                        np.ones((N_ACTIONS, 1)), rng=np.random.default_rng(0), block=100)
    shared = estimate_terms(log, terms, rng=np.random.default_rng(1), n_bootstrap=3000)
    separate = estimate_terms(log, terms, rng=np.random.default_rng(2), n_bootstrap=3000, shared_bootstrap=False)
    for name in ("replay", "ips", "snips", "dr"):
        assert shared[name].value == pytest.approx(separate[name].value, rel=1e-12), name
        assert shared[name].n == separate[name].n
        width = separate[name].ci_high - separate[name].ci_low
        assert abs(shared[name].ci_low - separate[name].ci_low) < 0.1 * width, name
        assert abs(shared[name].ci_high - separate[name].ci_high) < 0.1 * width, name


def test_exact_propensities_need_bernoulli_ts() -> None:
    log, _ = uniform_log(10, seed=6)
    with pytest.raises(ValueError, match="bernoulli_ts"):
        round_terms(log, make_policy("most_popular"), [f"i{a}" for a in range(N_ACTIONS)], np.ones((N_ACTIONS, 1)),
                    rng=np.random.default_rng(0), propensity="exact")
