"""Propensities in three forms from one set of Monte Carlo slates, the support mix, and what
`Engine.rank` records (prefix propensities, the support share, the ranked candidates)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from online.catalog import Catalog
from online.engine import Engine, EngineConfig
from online.events import Item, RankRequest
from online.objectives import FilterSettings, Objectives
from online.policies.arms import UniformRandom
from online.propensities import (
    SMALLEST_PROBABILITY,
    SlatePropensities,
    agreement,
    position_matrix,
    recorded_probabilities,
    serve,
    slate_propensities,
    uniform_prefix,
)
from online.state import InMemoryStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_uniform_prefix_is_one_over_the_falling_factorial() -> None:
    np.testing.assert_allclose(uniform_prefix(5, 3), [1 / 5, 1 / 20, 1 / 60])
    with pytest.raises(ValueError, match="at most 2 positions"):
        uniform_prefix(2, 3)


def test_agreement_counts_marginal_and_prefix_matches() -> None:
    ranked = np.array([[0, 1, 2], [0, 2, 1], [1, 0, 2], [0, 1, 3]])
    marginal, prefix = agreement(ranked, np.array([0, 1, 2]))
    np.testing.assert_allclose(marginal, [3 / 4, 2 / 4, 2 / 4])
    np.testing.assert_allclose(prefix, [3 / 4, 2 / 4, 1 / 4])  # the joint is not the product of marginals
    marginal, prefix = agreement(ranked, np.array([0, -1]))  # -1: not a candidate
    np.testing.assert_allclose(marginal, [3 / 4, 0.0])
    np.testing.assert_allclose(prefix, [3 / 4, 0.0])


def test_the_support_mix_adds_the_uniform_probabilities() -> None:
    ranked = np.tile(np.array([[2, 0, 1]]), (8, 1))  # a deterministic procedure
    found = slate_propensities(ranked, np.array([2, 0, 1]), 4, 0.1)
    np.testing.assert_allclose(found.marginal, 0.9 + 0.1 / 4)
    np.testing.assert_allclose(found.prefix, 0.9 + 0.1 * uniform_prefix(4, 3))
    other = slate_propensities(ranked, np.array([3, 0, 1]), 4, 0.1)  # never drawn: the mix alone
    np.testing.assert_allclose(other.prefix, 0.1 * uniform_prefix(4, 3))
    np.testing.assert_allclose(other.marginal, [0.1 / 4, 0.9 + 0.1 / 4, 0.9 + 0.1 / 4])
    probs = position_matrix(ranked, 4, 0.1)
    np.testing.assert_allclose(probs.sum(axis=0), 1.0)
    assert probs.min() == pytest.approx(0.1 / 4)
    with pytest.raises(ValueError, match="support_epsilon"):
        position_matrix(ranked, 4, 1.5)


def test_serve_mixes_in_uniform_rankings_at_rate_epsilon() -> None:
    ranked = np.tile(np.arange(3), (4, 1))
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    served, uniform = serve(ranked, 10, 0.0, rng)
    assert served.tolist() == [0, 1, 2] and not uniform
    assert rng.bit_generator.state == state  # epsilon 0 draws nothing: seeded runs stay as they were
    trials = 20_000
    uniform = [serve(ranked, 10, 0.2, rng) for _ in range(trials)]
    share = sum(u for _, u in uniform) / trials
    assert abs(share - 0.2) < 4 * np.sqrt(0.2 * 0.8 / trials)
    tops = np.bincount([int(s[0]) for s, u in uniform if u], minlength=10)
    assert tops.min() > 0 and all(len(set(s.tolist())) == 3 for s, _ in uniform)


def make_engine(n_items: int, epsilon: float, retrieval_size: int = 200,
                objectives: Objectives | None = None) -> Engine:
    catalog = Catalog(dim=2)
    items = [Item(item_id=f"i{j}", fields={"t": str(j)}, time=T0) for j in range(n_items)]
    engine = Engine(UniformRandom(), InMemoryStore(), catalog, np.random.default_rng(1),
                    config=EngineConfig(n_draws=16, support_epsilon=epsilon, retrieval_size=retrieval_size),
                    objectives=objectives)
    engine.add_items(items, np.ones((n_items, 2), dtype=np.float32))
    return engine


def test_rank_records_prefix_propensities_candidates_and_the_mix() -> None:
    engine = make_engine(6, 0.05)
    slate = engine.rank(RankRequest(request_id="r", user_id="u", k=3, time=T0))
    # a uniformly random procedure whichever branch served it: its exact probabilities, epsilon 1
    assert slate.support_epsilon == 1.0 and slate.n_draws == 16
    np.testing.assert_allclose([i.prefix_propensity for i in slate.items], uniform_prefix(6, 3))
    assert [i.propensity for i in slate.items] == [1 / 6] * 3
    assert slate.candidates == tuple(f"i{j}" for j in range(6))  # retrieved: recorded
    prefixes = [i.prefix_propensity for i in slate.items]
    assert all(p is not None for p in prefixes)
    assert prefixes == sorted(prefixes, reverse=True)  # a prefix probability never grows
    assert slate.joint_propensity == prefixes[-1]
    assert slate.items[0].prefix_propensity == pytest.approx(slate.items[0].propensity)
    given = engine.rank(RankRequest(request_id="q", user_id="u", k=2, candidates=("i1", "i2", "i3"), time=T0))
    assert given.candidates is None  # the request's own candidates, all ranked: not repeated
    assert {i.item_id for i in given.items} <= {"i1", "i2", "i3"}


def test_rank_records_the_candidates_the_filters_left() -> None:
    engine = make_engine(6, 0.05, objectives=Objectives(filters=FilterSettings(blocklist=frozenset({"i2"}))))
    slate = engine.rank(RankRequest(request_id="q", user_id="u", k=2, candidates=("i1", "i2", "i3"), time=T0))
    assert slate.candidates == ("i1", "i3")


def test_deterministic_order_with_the_mix_serves_uniform_slates_sometimes() -> None:
    engine = make_engine(4, 1.0)  # always the uniform ranking: prefix propensities are exact
    slate = engine.rank(RankRequest(request_id="r", user_id="u", k=3, time=T0))
    np.testing.assert_allclose([i.prefix_propensity for i in slate.items], uniform_prefix(4, 3))
    np.testing.assert_allclose([i.propensity for i in slate.items], 0.25)


def test_tiny_prefix_probabilities_are_recorded_positive() -> None:
    assert SMALLEST_PROBABILITY > 0
    found = slate_propensities(np.zeros((1, 100), dtype=np.int64) + np.arange(100), np.arange(100)[::-1].copy(),
                               10_000, 0.01)
    assert found.prefix[-1] == 0.0  # underflows float64 ...
    marginal, prefix = recorded_probabilities(SlatePropensities(np.array([0.5, 0.5]), np.array([0.5, 0.0])), 2)
    assert prefix == [0.5, SMALLEST_PROBABILITY] and marginal == [0.5, 0.5]  # ... and is recorded as the tiniest float
    with pytest.raises(ValueError, match="3 items"):
        recorded_probabilities(SlatePropensities(np.array([0.5, 0.5]), np.array([0.5, 0.0])), 3)
