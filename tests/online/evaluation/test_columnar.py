"""The vectorised context-free path: unbiased on a known-truth log, agrees with the driver."""

import numpy as np
import pytest

from online.evaluation.columnar import ColumnarLog, evaluate_context_free
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
