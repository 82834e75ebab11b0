"""Linear TS user sums stored as float32 (codec v3): agreement with the float64 layout over a
seeded stream, older blobs still decoding, and the many-blob codec equal to the one-blob one."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from online.catalog import Catalog
from online.codec import StateCodecError
from online.engine import Engine, EngineConfig
from online.events import Click, Impression, Item, RankRequest, ShownItem, Slate
from online.policies.base import FeedbackBatch
from online.policies.linear_codec import decode_stats, decode_users, encode_stats
from online.policies.linear_ts import LinearStats, LinearThompsonSampling, LinearTSParams
from online.state import InMemoryStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DIM, USERS, DRAWS = 16, 20, 32


def closed_loop(dtype: str, requests: int = 400) -> tuple[Engine, list[Slate]]:
    """Rank, show, click by a fixed logistic truth, learn: the seeds fix everything but the
    precision the users' sums are kept at."""
    world = np.random.default_rng(11)
    vectors = world.standard_normal((300, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    truth = world.standard_normal(DIM)
    policy = LinearThompsonSampling(LinearTSParams(user_state_dtype=dtype))  # type: ignore[arg-type]
    engine = Engine(policy, InMemoryStore(), Catalog(dim=DIM), np.random.default_rng(5),
                    config=EngineConfig(n_draws=DRAWS))
    engine.add_items([Item(item_id=f"i{n}", fields={"t": "x"}) for n in range(300)], vectors)
    clicks = np.random.default_rng(12)
    slates = []
    for step in range(requests):
        time = T0 + timedelta(seconds=step)
        request = RankRequest(request_id=f"r{step}", user_id=f"u{step % USERS}", k=5, time=time)
        slate = engine.rank(request)
        shown = tuple(ShownItem(item_id=i.item_id, position=i.position) for i in slate.items)
        events: list[Impression | Click] = [Impression(event_id=f"e{step}", request_id=request.request_id,
                                                       user_id=request.user_id, shown=shown, time=time)]
        for item in slate.items:
            logit = vectors[engine.catalog.index[item.item_id]] @ truth - 2.0
            if clicks.random() < 1 / (1 + np.exp(-logit)):
                events.append(Click(event_id=f"c{step}-{item.position}", request_id=request.request_id,
                                    user_id=request.user_id, item_id=item.item_id, time=time))
        engine.observe(events)
        slates.append(slate)
    return engine, slates


def test_float32_user_sums_agree_with_float64_over_a_seeded_stream() -> None:
    """Stated tolerance: learned posterior means within 1e-5 (relative to the largest entry),
    at least 99% of the served slates identical in items and propensities, and every
    propensity of a slate with the same items within 1/m."""
    narrow, narrow_slates = closed_loop("float32")
    wide, wide_slates = closed_loop("float64")
    for user in (f"u{n}" for n in range(USERS)):
        mean32 = narrow.policy.user_vector(narrow.global_state, narrow.load_user(user))
        mean64 = wide.policy.user_vector(wide.global_state, wide.load_user(user))
        np.testing.assert_allclose(mean32, mean64, rtol=0, atol=1e-5 * np.abs(mean64).max())
    same = 0
    for a, b in zip(narrow_slates, wide_slates, strict=True):
        if [i.item_id for i in a.items] == [i.item_id for i in b.items]:
            shares = np.array([[i.propensity, j.propensity] for i, j in zip(a.items, b.items, strict=True)])
            assert np.abs(shares[:, 0] - shares[:, 1]).max() <= 1 / DRAWS + 1e-12
            same += all(i.propensity == j.propensity for i, j in zip(a.items, b.items, strict=True))
    assert same >= 0.99 * len(narrow_slates)
    blob = narrow.store.get(narrow.user_key("u0"))
    assert blob is not None and len(blob) == 24 + 4 * ((DIM + 1) * (DIM + 2) // 2 + DIM + 1)


def test_float64_blobs_still_decode_and_keep_learning() -> None:
    """A user written by the float64 layout (version 2) or version 1 is read by a float32
    policy; its next write is version 3."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((30, 5))
    stats = LinearStats.from_gram(x.T @ x, x.T @ rng.random(30), 30.0, 4.0)
    v2 = encode_stats("linear_ts.user", stats)
    v1 = bytes([*v2[:4], 1, *v2[5:]])
    policy = LinearThompsonSampling()
    for old in (v1, v2):
        assert len(old) == 24 + 8 * (15 + 5)
        decoded = policy.decode_user(old)
        np.testing.assert_array_equal(decoded.gram_upper, stats.gram_upper)
        assert decoded.n_exposures == 30.0 and decoded.reward_total == 4.0
        rewritten = policy.encode_user(decoded)
        assert rewritten[4] == 3 and len(rewritten) == 24 + 4 * (15 + 5)
        np.testing.assert_allclose(policy.decode_user(rewritten).gram_upper, stats.gram_upper, rtol=2**-24)


def test_many_blobs_decode_like_one_at_a_time() -> None:
    rng = np.random.default_rng(3)
    policy = LinearThompsonSampling()
    users = [f"u{n % 3}" for n in range(12)]
    rows = FeedbackBatch.from_rows(users, [f"i{n}" for n in range(12)], [f"r{n}" for n in range(12)],
                                   ["feed"] * 12, np.zeros(12, dtype=np.int64), np.ones(12), rng.random(12),
                                   rng.standard_normal((12, 4)), np.zeros(12))
    _, learned = policy.learn(policy.init_global(4), {}, rows)
    states = [s for s in learned.values() if s is not None]
    blobs = policy.encode_users(states)
    assert blobs == [policy.encode_user(s) for s in states]
    mixed = [*blobs, encode_stats("linear_ts.user", states[0])]  # versions 3 and 2 together
    for batch in (blobs, mixed):
        for many, one in zip(decode_users(batch), [decode_stats("linear_ts.user", b) for b in batch], strict=True):
            np.testing.assert_array_equal(many.gram_upper, one.gram_upper)
            np.testing.assert_array_equal(many.response, one.response)
            assert (many.n_exposures, many.reward_total) == (one.n_exposures, one.reward_total)
    corrupt = [*blobs[:2], b"XXXX" + blobs[2][4:]]
    with pytest.raises(StateCodecError, match=r"not a linear_ts\.user state"):
        decode_users(corrupt)
    with pytest.raises(StateCodecError, match=r"truncated|wrong length"):
        decode_users([blobs[0], blobs[1][:-3]])

