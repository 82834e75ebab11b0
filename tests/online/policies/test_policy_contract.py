"""Contract suite run against every policy, discovered from the Policy class tree."""

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from encoders.hashing import HashingEncoder
from online.catalog import Catalog
from online.engine import Engine, EngineConfig
from online.events import Click, Impression, Item, RankRequest, ShownItem, Slate
from online.policies import POLICIES
from online.policies.base import Policy
from online.state import InMemoryStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DIM = 8
ENCODER = HashingEncoder(dim=DIM, seed=3)
COLOURS = ["red", "blue", "green", "black", "white"]


def concrete_policies(cls: type = Policy) -> set[type]:
    found: set[type] = set()
    for sub in cls.__subclasses__():
        shipped = sub.__module__.startswith("online.")  # not the tests' own helper policies
        if shipped and not getattr(sub, "__abstractmethods__", None) and not sub.__name__.startswith("_"):
            found.add(sub)
        found |= concrete_policies(sub)
    return found


def test_every_policy_class_is_registered() -> None:
    assert concrete_policies() == set(POLICIES.values())


def items(start: int, stop: int) -> list[Item]:
    return [
        Item(item_id=f"i{n}", fields={"title": f"{COLOURS[n % 5]} shirt number {n}"}, time=T0)
        for n in range(start, stop)
    ]


def make_engine(name: str, seed: int = 1) -> Engine:
    engine = Engine(POLICIES[name](), InMemoryStore(), Catalog(dim=DIM), np.random.default_rng(seed),
                    config=EngineConfig(n_draws=16))
    batch = items(0, 30)
    engine.add_items(batch, ENCODER.encode([i.text() for i in batch]))
    return engine


def feedback(slate: Slate, step: int, clicked: int = 0) -> list[Impression | Click]:
    shown = tuple(ShownItem(item_id=i.item_id, position=i.position, propensity=i.propensity) for i in slate.items)
    time = T0 + timedelta(seconds=step)
    return [
        Impression(event_id=f"e{step}", request_id=slate.request_id, user_id=slate.user_id,
                   shown=shown, time=time),
        Click(event_id=f"c{step}", request_id=slate.request_id, user_id=slate.user_id,
              item_id=slate.items[clicked].item_id, time=time + timedelta(seconds=1)),
    ]


def play(engine: Engine, steps: int, users: int = 3) -> list[Slate]:
    slates = []
    for step in range(steps):
        request = RankRequest(request_id=f"r{step}", user_id=f"u{step % users}", k=4,
                              time=T0 + timedelta(seconds=step))
        slate = engine.rank(request)
        engine.observe(feedback(slate, step))
        slates.append(slate)
    return slates


@pytest.fixture(params=sorted(POLICIES))
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_same_seed_same_slates(name: str) -> None:
    first = [s.items for s in play(make_engine(name, seed=5), 20)]
    second = [s.items for s in play(make_engine(name, seed=5), 20)]
    assert first == second


def test_codec_round_trip_after_learning(name: str) -> None:
    engine = make_engine(name)
    play(engine, 25)
    policy: Policy[Any, Any] = engine.policy
    blob = policy.encode_global(engine.global_state)
    assert policy.encode_global(policy.decode_global(blob)) == blob
    if policy.uses_user_state:
        user_blob = engine.store.get(engine.user_key("u0"))
        assert user_blob is not None
        assert policy.encode_user(policy.decode_user(user_blob)) == user_blob


def test_decoded_state_ranks_like_the_original(name: str) -> None:
    engine = make_engine(name)
    play(engine, 25)
    restored = Engine(engine.policy, engine.store, engine.catalog, np.random.default_rng(9),
                      config=EngineConfig(n_draws=16))
    engine.rng = np.random.default_rng(9)
    request = RankRequest(request_id="x", user_id="u1", k=4, time=T0)
    assert restored.rank(request).items == engine.rank(request).items


def test_invariants_hold_after_learning(name: str) -> None:
    engine = make_engine(name)
    play(engine, 30)
    for user in ("u0", "u1", "u2", "never-seen"):
        engine.policy.check_invariants(engine.global_state, engine.load_user(user))


def test_unseen_user_and_unseen_items_are_ranked(name: str) -> None:
    engine = make_engine(name)
    play(engine, 10)
    fresh = items(30, 40)
    engine.add_items(fresh, ENCODER.encode([i.text() for i in fresh]))
    request = RankRequest(request_id="new", user_id="stranger", candidates=tuple(i.item_id for i in fresh),
                          k=5, time=T0)
    slate = engine.rank(request)
    assert len(slate.items) == 5
    assert {i.item_id for i in slate.items} <= {i.item_id for i in fresh}
    assert all(0 < i.propensity <= 1 and i.std >= 0 for i in slate.items)


def test_removed_items_are_never_ranked(name: str) -> None:
    engine = make_engine(name)
    play(engine, 10)
    gone = [item.model_copy(update={"active": False}) for item in items(0, 25)]
    engine.add_items(gone, ENCODER.encode([i.text() for i in gone]))
    slate = engine.rank(RankRequest(request_id="q", user_id="u0", k=10, time=T0))
    assert {i.item_id for i in slate.items} == {f"i{n}" for n in range(25, 30)}


def test_learn_does_not_mutate_its_inputs(name: str) -> None:
    engine = make_engine(name)
    play(engine, 10)
    policy = engine.policy
    before = policy.encode_global(engine.global_state)
    slate = engine.rank(RankRequest(request_id="m", user_id="u0", k=4, time=T0))
    batch, _ = engine.feedback_batch(feedback(slate, 99))
    policy.learn(engine.global_state, {"u0": engine.load_user("u0")}, batch)
    assert policy.encode_global(engine.global_state) == before


def test_slate_has_k_distinct_items_with_positions(name: str) -> None:
    engine = make_engine(name)
    for slate in play(engine, 15):
        ids = [i.item_id for i in slate.items]
        assert len(ids) == len(set(ids)) == 4
        assert [i.position for i in slate.items] == [0, 1, 2, 3]
        assert slate.policy == name and slate.policy_version.startswith(name)


def test_the_engine_builds_features_in_the_policys_precision(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Engine.score hands sample_scores the candidates' features in the policy's `score_dtype`
    (float32 for linear TS, which scores in single precision; float64 for the others)."""
    engine = make_engine(name)
    seen: list[np.dtype[Any]] = []
    sample_scores = engine.policy.sample_scores

    def spy(*args: Any) -> Any:
        seen.append(args[2].features.dtype)
        return sample_scores(*args)

    monkeypatch.setattr(engine.policy, "sample_scores", spy)
    play(engine, 3)
    assert seen and set(seen) == {np.dtype(type(engine.policy).score_dtype)}
