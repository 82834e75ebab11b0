"""The river CTR policy: vectorised prediction equals river's own, learning moves it."""

import numpy as np

from online.policies.base import FeedbackBatch, RankContext
from online.policies.river_ctr import RiverCTR


def trained(policy: RiverCTR, rng: np.random.Generator):  # type: ignore[no-untyped-def]
    m = 400
    items = [f"i{n % 7}" for n in range(m)]
    x = rng.standard_normal((m, 5))
    exposure = np.ones(m)
    batch = FeedbackBatch.from_rows(
        [f"u{n % 3}" for n in range(m)], items, [f"r{n}" for n in range(m)], ["feed"] * m,
        np.zeros(m, dtype=np.int64), exposure, np.zeros(m), x, np.arange(m, dtype=np.float64),
    )
    state, _ = policy.learn(policy.init_global(5), {}, batch)
    clicks = FeedbackBatch.from_rows(
        [f"u{n % 3}" for n in range(0, m, 5)], items[::5], [f"r{n}" for n in range(0, m, 5)],
        ["feed"] * len(items[::5]), np.full(len(items[::5]), -1), np.zeros(len(items[::5])),
        np.ones(len(items[::5])), x[::5], np.arange(0, m, 5, dtype=np.float64) + 1,
    )
    state, _ = policy.learn(state, {}, clicks)
    return state, x


def test_vectorised_prediction_equals_river() -> None:
    policy = RiverCTR()
    state, x = trained(policy, np.random.default_rng(0))
    assert state.n_iterations > 0
    context = RankContext("u1", "feed", [f"i{n}" for n in range(7)], x[:7])
    ours = policy.predict(state, context)
    model = policy._model(state)
    theirs = [model.predict_proba_one(policy._features("u1", f"i{n}", "feed", 0, x[n]))[True] for n in range(7)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)


def test_learning_moves_predictions_away_from_the_untrained_half() -> None:
    policy = RiverCTR()
    state, x = trained(policy, np.random.default_rng(1))
    context = RankContext("u0", "feed", ["i0", "i1"], x[:2])
    fresh = policy.predict(policy.init_global(5), context)
    np.testing.assert_allclose(fresh, 0.5)
    learned = policy.predict(state, context)
    assert np.all(learned < 0.5)  # 80% of the exposures were not clicked
