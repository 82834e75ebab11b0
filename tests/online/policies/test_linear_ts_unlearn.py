"""Forgetting a user takes its sums out of the population (linear TS, no scenario offsets)."""

import numpy as np

from online.catalog import Catalog
from online.engine import Engine
from online.events import Click, Impression, Item, ShownItem
from online.policies.linear_ts import LinearThompsonSampling, LinearTSParams
from online.state import InMemoryStore

from .test_linear_ts_scenarios import D, batch


def test_unlearning_a_user_leaves_the_population_of_the_others() -> None:
    rng = np.random.default_rng(3)
    policy = LinearThompsonSampling()
    m = 40
    users = [f"u{n % 4}" for n in range(m)]
    x, exposures = rng.normal(size=(m, D)), rng.integers(0, 2, size=m).astype(float)
    rewards = rng.integers(0, 2, size=m).astype(float)
    both, states = policy.learn(policy.init_global(D), {}, batch(users, ["default"] * m, x, exposures, rewards))
    keep = np.asarray([u != "u1" for u in users])
    others, _ = policy.learn(policy.init_global(D), {}, batch([u for u in users if u != "u1"],
                                                              ["default"] * int(keep.sum()), x[keep],
                                                              exposures[keep], rewards[keep]))
    forgotten = policy.unlearn(both, states["u1"])
    np.testing.assert_allclose(forgotten.gram_upper, others.gram_upper, atol=1e-12)
    np.testing.assert_allclose(forgotten.response, others.response, atol=1e-12)
    assert forgotten.n_exposures == others.n_exposures and forgotten.reward_total == others.reward_total
    assert policy.unlearn(both, None) is both


def test_with_scenario_offsets_the_population_is_kept() -> None:
    policy = LinearThompsonSampling(LinearTSParams(scenario_offsets=("a", "b")))
    rng = np.random.default_rng(4)
    x = rng.normal(size=(6, D))
    population, states = policy.learn(policy.init_global(D), {}, batch(["u"] * 6, ["a", "b"] * 3, x, np.ones(6),
                                                                       np.ones(6)))
    assert policy.unlearn(population, states["u"]) is population


def test_engine_forget_restores_the_prior_of_a_partition_with_one_user() -> None:
    catalog = Catalog(dim=D - 1)
    engine = Engine(LinearThompsonSampling(), InMemoryStore(), catalog, np.random.default_rng(0))
    items = [Item(item_id=f"i{n}", fields={"title": f"t{n}"}) for n in range(3)]
    engine.add_items(items, np.random.default_rng(1).normal(size=(3, D - 1)).astype(np.float32))
    shown = tuple(ShownItem(item_id=f"i{n}", position=n) for n in range(3))
    engine.observe([Impression(event_id="e", request_id="r", user_id="u", shown=shown),
                    Click(event_id="c", request_id="r", user_id="u", item_id="i0")])
    assert engine.global_state.n_exposures == 3
    engine.forget("u")
    assert engine.load_user("u") is None
    assert engine.global_state.n_exposures == 0 and engine.global_state.reward_total == 0
    np.testing.assert_allclose(engine.global_state.response, 0.0, atol=1e-12)
