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


def test_positives_learn_at_once_and_negatives_when_the_window_closes() -> None:
    policy = RiverCTR()
    state, x = trained(policy, np.random.default_rng(1))
    context = RankContext("u0", "feed", ["i0", "i1"], x[:2])
    np.testing.assert_allclose(policy.predict(policy.init_global(5), context), 0.5)
    after_clicks = policy.predict(state, context)
    assert np.all(after_clicks > 0.5)  # only the clicked exposures are labelled so far
    late = FeedbackBatch.from_rows(["u9"], ["i0"], ["late"], ["feed"], np.zeros(1, dtype=np.int64), np.ones(1),
                                   np.zeros(1), x[:1], np.array([1e6]))
    closed, _ = policy.learn(state, {}, late)
    assert closed.join.pending.keys() == {("late", "i0")}
    assert np.all(policy.predict(closed, context) < after_clicks)  # the 80% unclicked arrive as zeros
