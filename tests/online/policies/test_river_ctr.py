"""The river CTR policy: vectorised prediction equals river's own, labels and profiles, codec."""

import importlib.metadata

import numpy as np
import pytest

from online.codec import StateCodecError, pack_state
from online.policies.base import FeedbackBatch, RankContext
from online.policies.delayed_join import LabelledExample
from online.policies.linear_stats import LinearStats
from online.policies.river_ctr import RiverCTR, RiverCTRParams, RiverState


def trained(policy: RiverCTR, rng: np.random.Generator) -> tuple[RiverState, dict[str, LinearStats | None], np.ndarray]:
    """Two rounds of 200 exposures (7 items, 3 users) with every fifth clicked a second later."""
    m = 400
    items = [f"i{n % 7}" for n in range(m)]
    users_of = [f"u{n % 3}" for n in range(m)]
    x = rng.standard_normal((m, 5))
    state, users = policy.init_global(5), {}
    for half in (range(0, 200), range(200, 400)):
        rows = list(half)
        batch = FeedbackBatch.from_rows(
            [users_of[n] for n in rows], [items[n] for n in rows], [f"r{n}" for n in rows], ["feed"] * 200,
            np.zeros(200, dtype=np.int64), np.ones(200), np.zeros(200), x[rows], np.asarray(rows, dtype=np.float64),
        )
        state, learned = policy.learn(state, users, batch)
        users |= learned
        picked = rows[::5]
        clicks = FeedbackBatch.from_rows(
            [users_of[n] for n in picked], [items[n] for n in picked], [f"r{n}" for n in picked], ["feed"] * 40,
            np.full(40, -1), np.zeros(40), np.ones(40), x[picked], np.asarray(picked, dtype=np.float64) + 1,
        )
        state, learned = policy.learn(state, users, clicks)
        users |= learned
    return state, users, x


def test_vectorised_prediction_equals_river() -> None:
    policy = RiverCTR(RiverCTRParams(window_s=50.0))
    state, users, x = trained(policy, np.random.default_rng(0))
    assert state.n_iterations > 0
    user = users["u1"]
    assert user is not None and user.reward_total > 0
    context = RankContext("u1", "feed", [f"i{n}" for n in range(7)], x[:7])
    ours = policy.predict(state, user, context)
    rate = state.population.reward_total / state.population.n_exposures
    lin = policy.params.score_scale * (x[:7] @ policy.user_vector(state, user, "feed") - rate)
    theirs = [policy.river_model(state).predict_proba_one(policy.features(LabelledExample(
        "u1", f"i{n}", "feed", 0, np.array([lin[n]]), 0.0, 0.0)))[True] for n in range(7)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)
    assert state.weights.to_dict()["lin"] != 0.0


def test_positives_learn_at_once_and_negatives_when_the_window_closes() -> None:
    policy = RiverCTR(RiverCTRParams(window_s=1800.0))
    state, users, x = trained(policy, np.random.default_rng(1))
    context = RankContext("u0", "feed", ["i0", "i1"], x[:2])
    np.testing.assert_allclose(policy.predict(policy.init_global(5), None, context), policy.params.prior_ctr)
    after_clicks = policy.predict(state, users["u0"], context)
    assert state.weights.intercept > policy.init_global(5).weights.intercept  # only the clicked exposures so far
    late = FeedbackBatch.from_rows(["u9"], ["i0"], ["late"], ["feed"], np.zeros(1, dtype=np.int64), np.ones(1),
                                   np.zeros(1), x[:1], np.array([1e6]))
    closed, _ = policy.learn(state, users, late)
    assert closed.join.pending.keys() == {("late", "i0")}
    assert np.all(policy.predict(closed, users["u0"], context) < after_clicks)  # the 80% unclicked arrive as zeros


def test_the_default_window_labels_the_simulators_clicks() -> None:
    assert RiverCTRParams().window_s >= 61.0  # the simulator's clicks come 1 to 61 s after the impression


def test_an_exposure_is_labelled_with_the_linear_score_it_was_shown_with() -> None:
    policy = RiverCTR(RiverCTRParams(l2=0.0))
    start = policy.init_global(2).weights.to_dict()["lin"]
    x = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    batch = FeedbackBatch.from_rows(["u"] * 3, ["a", "b", "b"], ["r"] * 3, ["feed"] * 3, np.array([0, 1, -1]),
                                    np.array([1.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0]), x, np.array([0.0, 0.0, 1.0]))
    state, users = policy.learn(policy.init_global(2), {}, batch)  # the click comes in the batch of its impression
    user = users["u"]
    assert user is not None and user.reward_total == 1.0 and user.n_exposures == 2.0  # linear TS's sums
    assert state.join.pending.keys() == {("r", "a")}
    np.testing.assert_allclose([p.features[0] for p in state.join.pending.values()], 0.0)  # a new user, no data
    learned = state.weights.to_dict()
    assert learned["i=b"] > 0 and learned["lin"] == start  # not the score the click itself taught


def test_learning_does_not_mutate_the_state_it_starts_from() -> None:
    policy = RiverCTR()
    state, users, x = trained(policy, np.random.default_rng(2))
    before, iterations = state.weights.to_dict(), state.n_iterations
    more = FeedbackBatch.from_rows(["u0"], ["i1"], ["r0"], ["feed"], np.array([-1]), np.zeros(1), np.ones(1), x[:1],
                                   np.array([2.0]))
    later, _ = policy.learn(state, users, more)
    assert state.weights.to_dict() == before and state.n_iterations == iterations
    assert later.n_iterations >= iterations


def test_codec_round_trip_and_old_or_hostile_blobs() -> None:
    policy = RiverCTR()
    state, users, x = trained(policy, np.random.default_rng(3))
    blob = policy.encode_global(state)
    decoded = policy.decode_global(blob)
    assert policy.encode_global(decoded) == blob
    context = RankContext("u2", "feed", ["i0", "i3", "i6"], x[:3])
    np.testing.assert_allclose(policy.predict(decoded, users["u2"], context), policy.predict(state, users["u2"],
                                                                                              context))
    user = users["u2"]
    assert user is not None
    assert policy.encode_user(policy.decode_user(policy.encode_user(user))) == policy.encode_user(user)
    with pytest.raises(StateCodecError, match="revision 1"):
        policy.decode_global(pack_state("river_ctr.model", 1, {}, {}))
    with pytest.raises(StateCodecError):
        policy.decode_global(blob[:-4])
    with pytest.raises(StateCodecError):
        policy.decode_user(pack_state("river_ctr.user", 1, {}, {}))
    with pytest.raises(StateCodecError, match="malformed"):
        policy.decode_global(pack_state("river_ctr.model", 2, {"names": []}, {
            "values": np.zeros(0), "population": np.frombuffer(policy.bandit.encode_global(state.population),
                                                               dtype=np.uint8)}))


def test_the_river_version_whose_private_weight_store_is_used() -> None:
    # river_ctr._write_weights sets river's private `_weights`; a new river must be checked by hand
    assert importlib.metadata.version("river").startswith("0.26.")
