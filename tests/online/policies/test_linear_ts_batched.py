"""Linear TS's batched learning path (grouped sums, the stacked new states, the encoder reading
them) against a plain per-user, per-row reference, and the encoder's shortcut against the
general path."""

from __future__ import annotations

import numpy as np
import pytest

from online.policies.base import FeedbackBatch
from online.policies.linear_codec import encode_stats
from online.policies.linear_stats import LinearStats, grouped_rows, grouped_sum
from online.policies.linear_ts import LinearThompsonSampling, LinearTSParams

DIM = 6


def random_batch(rng: np.random.Generator, n_users: int, n_rows: int) -> FeedbackBatch:
    """Exposure rows (weight 1) and reward rows (exposure 0, reward in (0, 1]) of random users."""
    users = [f"u{int(u)}" for u in rng.integers(n_users, size=n_rows)]
    shown = rng.random(n_rows) < 0.7
    return FeedbackBatch.from_rows(
        users, [f"i{i}" for i in range(n_rows)], [f"r{i}" for i in range(n_rows)], ["default"] * n_rows,
        np.where(shown, 0, -1).astype(np.int64), shown.astype(np.float64), np.where(shown, 0.0, rng.random(n_rows)),
        rng.standard_normal((n_rows, DIM)), np.zeros(n_rows),
    )


def reference_user(state: LinearStats | None, batch: FeedbackBatch, user: str, float32: bool) -> LinearStats:
    """A user's sums plus its rows of the batch, one row at a time (full matrices, float64)."""
    gram = np.zeros((DIM, DIM)) if state is None else state.gram.copy()
    response = np.zeros(DIM) if state is None else state.response.copy()
    exposures = 0.0 if state is None else state.n_exposures
    rewards = 0.0 if state is None else state.reward_total
    for row, owner in enumerate(batch.user_ids):
        if owner == user:
            x = batch.features[row]
            gram += batch.exposures[row] * np.outer(x, x)
            response += batch.rewards[row] * x
            exposures += batch.exposures[row]
            rewards += batch.rewards[row]
    if float32:
        gram, response = gram.astype(np.float32).astype(np.float64), response.astype(np.float32).astype(np.float64)
    return LinearStats.from_gram(gram, response, exposures, rewards)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batched_learn_equals_the_row_by_row_sums(dtype: str, seed: int) -> None:
    """Two batches (the second over states the first made, some users new): every user's sums
    within 2 float32 ulps (float32 states: the grouped and the row-by-row float64 sums may round
    to neighbouring float32 values) or 1e-12 relative (float64) of the reference; the population
    grows by exactly what the users' stored sums grew by."""
    rng = np.random.default_rng(seed)
    policy = LinearThompsonSampling(LinearTSParams(user_state_dtype=dtype))  # type: ignore[arg-type]
    population = policy.init_global(DIM)
    states: dict[str, LinearStats | None] = {}
    for _ in range(2):
        batch = random_batch(rng, n_users=40, n_rows=400)
        before = {user: states.get(user) for user in batch.users}
        new_population, updated = policy.learn(population, before, batch)
        rtol = 2 * 2.0**-23 if dtype == "float32" else 1e-12
        for user in batch.users:
            expected, got = reference_user(before[user], batch, user, dtype == "float32"), updated[user]
            assert got is not None
            np.testing.assert_allclose(got.gram_upper, expected.gram_upper, rtol=rtol, atol=1e-12)
            np.testing.assert_allclose(got.response, expected.response, rtol=rtol, atol=1e-12)
            assert got.n_exposures == pytest.approx(expected.n_exposures)
            assert got.reward_total == pytest.approx(expected.reward_total)
        grown = sum(s.gram_upper - (before[u].gram_upper if before[u] is not None else 0.0)  # type: ignore[union-attr]
                    for u, s in updated.items() if s is not None)
        np.testing.assert_allclose(new_population.gram_upper - population.gram_upper, grown, rtol=1e-12, atol=1e-9)
        population, states = new_population, {**states, **updated}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_encoding_the_states_learn_made_is_byte_for_byte_the_general_path(dtype: str) -> None:
    """encode_users over the states the last learn returned (read from its stacked sums), over
    the same states in another order and over a subset (gathered again) all equal encode_stats
    of each state."""
    rng = np.random.default_rng(7)
    policy = LinearThompsonSampling(LinearTSParams(user_state_dtype=dtype))  # type: ignore[arg-type]
    _, updated = policy.learn(policy.init_global(DIM), {}, random_batch(rng, n_users=30, n_rows=200))
    states = [s for s in updated.values() if s is not None]

    def one_by_one(chosen: list[LinearStats]) -> list[bytes]:
        return [encode_stats("linear_ts.user", s, float32=dtype == "float32") for s in chosen]

    assert policy.encode_users(states) == one_by_one(states)
    assert policy.encode_users(states[::-1]) == one_by_one(states[::-1])
    assert policy.encode_users(states[1:]) == one_by_one(states[1:])
    fresh = LinearThompsonSampling(LinearTSParams(user_state_dtype=dtype))  # type: ignore[arg-type]
    assert fresh.encode_users(states) == policy.encode_users(states)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grouped_sum_is_np_add_at_bit_for_bit(seed: int) -> None:
    """The responses' per-user sums add each user's rows in row order, as np.add.at does: equal
    to the last bit, also with no rows and with users that have none."""
    rng = np.random.default_rng(seed)
    for rows, groups in ((0, 3), (1, 1), (500, 40), (5_000, 3_000)):
        group = rng.integers(groups, size=rows)
        values = rng.standard_normal((rows, DIM)) * 10.0 ** rng.integers(-6, 6, size=(rows, 1))
        expected = np.zeros((groups, DIM))
        np.add.at(expected, group, values)
        assert np.array_equal(grouped_sum(group, groups, values), expected)


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.int32, np.uint64])
def test_grouped_sum_takes_codes_of_any_integer_dtype(dtype: type[np.integer]) -> None:
    """Codes whose cells (code x D + column) pass 2^15 and 2^16: int16 or uint16 arithmetic would
    wrap them (11,000 x 6 = 66,000 wraps to 464 in 16 bits, another group's cell), uint64 would
    turn them into floats."""
    rng = np.random.default_rng(11)
    groups = 12_000
    group = rng.integers(groups, size=3_000)
    values = rng.standard_normal((3_000, DIM))
    expected = grouped_sum(group.astype(np.int64), groups, values)
    assert np.array_equal(grouped_sum(group.astype(dtype), groups, values), expected)


def test_grouped_rows_are_the_same_with_group_codes_past_16_bits() -> None:
    """The exposure rows are ordered by a radix sort of 16-bit codes when they fit, else by a
    merge sort of the int64 codes: the same sums either way (the same groups moved past 2^16)."""
    rng = np.random.default_rng(3)
    batch = random_batch(rng, n_users=40, n_rows=400)
    shifted = batch.user_index + 70_000
    narrow = grouped_rows(batch.user_index, len(batch.users), batch.features, batch.exposures, batch.rewards)
    wide = grouped_rows(shifted, len(batch.users) + 70_000, batch.features, batch.exposures, batch.rewards)
    for small, large in zip(narrow, wide, strict=True):
        assert np.array_equal(small, large[70_000:]) and not large[:70_000].any()
