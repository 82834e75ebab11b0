"""The contextual river reward model of DR (`online.evaluation.river_reward`): it learns a user's
taste, predicts with river's own model, never reads a round's reward before that round's
prediction, is deterministic given the log, and DR with it is unbiased where the logging policy
is known (synthetic_world.py, as in test_driver_slates.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
import synthetic_world as W

from online.engine import EngineConfig
from online.evaluation.driver import DriverConfig, evaluate_log
from online.evaluation.reward_model import PositionCTRModel
from online.evaluation.river_reward import RiverRewardModel, RiverRewardParams
from online.events import Click, RankRequest

WORLD = W.World(rel=np.array([0.9, 0.6, 0.4, 0.25, 0.1]), exam=np.array([1.0, 0.6, 0.35]))
LOGGER, TARGET = np.array([1.0, 2.0, 3.0, 4.0, 5.0]), np.array([6.0, 3.0, 1.5, 1.0, 0.5])
EPSILON, DRAWS, ROUNDS = 0.05, 512, 2000
VECTORS = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def embed(items: Any) -> np.ndarray:
    return np.ones((len(items), 2), dtype=np.float32)


def request(user: str) -> RankRequest:
    return RankRequest(request_id=f"r-{user}", user_id=user, k=2, time=T0)


def taught(model: RiverRewardModel | PositionCTRModel, rounds: int = 300) -> None:
    """User a clicks item 0 and never item 1; user b the reverse (each shown both, in turn)."""
    for r in range(rounds):
        user = "a" if r % 2 == 0 else "b"
        order = np.array([0, 1] if r % 4 < 2 else [1, 0], dtype=np.int64)
        clicked = order == (0 if user == "a" else 1)
        model.update(order, np.array([0, 1], dtype=np.int64), clicked.astype(np.float64), request(user))


def test_it_learns_each_users_taste_where_counts_cannot() -> None:
    river, counts = RiverRewardModel(lambda: VECTORS), PositionCTRModel()
    taught(river)
    taught(counts)
    rows = np.array([0, 1], dtype=np.int64)
    a, b = river.predict(rows, 2, request("a")), river.predict(rows, 2, request("b"))
    assert a[0, 0] > 2 * a[1, 0] and b[1, 0] > 2 * b[0, 0]
    assert np.allclose(counts.predict(rows, 2, request("a")), counts.predict(rows, 2, request("b")))
    new_user = river.predict(rows, 2, request("c"))  # no taste yet: the counts' view, both items alike
    assert abs(new_user[0, 0] - new_user[1, 0]) < 0.1 * new_user[0, 0]


def test_vectorised_prediction_is_rivers_own() -> None:
    model = RiverRewardModel(lambda: VECTORS, RiverRewardParams(learning_rate=0.05))
    taught(model, 40)
    rows = np.array([1, 0], dtype=np.int64)
    q = model.predict(rows, 2, request("a"))
    ctr = model._ctr_logit(rows, 2)
    taste = model._taste(model._features(rows), request("a"))
    for i in range(2):
        for p in range(2):
            expected = model._model.predict_proba_one({"ctr": ctr[i, p], "taste": taste[i]})[True]
            assert q[i, p] == pytest.approx(expected, rel=1e-12)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="positions"):
        RiverRewardModel(lambda: VECTORS).update(np.array([0]), np.array([-1]), np.array([1.0]))
    with pytest.raises(ValueError, match="RiverRewardParams"):
        RiverRewardParams(learning_rate=0.0)
    with pytest.raises(ValueError, match="reward_model"):
        DriverConfig(reward_model="forest")  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def log() -> list[Any]:
    return W.engine_log(WORLD, W.PlackettLuce(LOGGER, "logger"), ROUNDS, seed=5, n_draws=DRAWS, epsilon=EPSILON)


def _evaluate(log: list[Any], reward_model: str) -> dict[str, Any]:
    config = DriverConfig(engine=EngineConfig(n_draws=DRAWS, support_epsilon=EPSILON), n_bootstrap=200, seed=3,
                          reward_model=reward_model)  # type: ignore[arg-type]
    return evaluate_log(log, [W.PlackettLuce(TARGET, "target")], embed, 2, config=config).policy("target").estimates


def test_a_rounds_prediction_does_not_see_its_own_reward(log: list[Any]) -> None:
    """Flipping the last round's clicks moves DR exactly as it moves IPS (by w * reward / n): the
    reward model's q for that round was fixed before its reward was known."""
    last = max(int(e.request_id[1:]) for e in log if isinstance(e, Click))
    without = [e for e in log if not (isinstance(e, Click) and e.request_id == f"r{last}")]
    full, cut = _evaluate(log, "river"), _evaluate(without, "river")
    assert full["ips"].value != cut["ips"].value
    assert full["dr"].value - cut["dr"].value == pytest.approx(full["ips"].value - cut["ips"].value, abs=1e-12)


def test_deterministic_given_the_log(log: list[Any]) -> None:
    first, second = _evaluate(log, "river"), _evaluate(log, "river")
    assert first["dr"] == second["dr"]
    assert first["dr"].value != _evaluate(log, "log_ctr")["dr"].value  # a different model, used


def test_dr_with_the_river_model_covers_the_exact_value(log: list[Any]) -> None:
    """The logging policy's propensities are exact (up to Monte Carlo): DR is unbiased whatever q,
    so it lies within 4 standard errors (from its 95% interval) of the exact value."""
    estimate = _evaluate(log, "river")["dr"]
    truth = W.exact_value(WORLD, TARGET, EPSILON) / 3
    se = (estimate.ci_high - estimate.ci_low) / (2 * 1.96)
    assert abs(estimate.value - truth) < 4 * se, (estimate, truth)
