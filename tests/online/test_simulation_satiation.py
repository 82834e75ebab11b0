"""Users who value variety: the simulator's satiation option (online/simulation/satiation.py)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from online.simulation import SatiationConfig, Simulator, SimulatorConfig
from online.simulation.calibration import make_slate
from online.simulation.satiation import greedy_slate, satiation_factors, similarity

SMALL = SimulatorConfig(n_users=200, n_candidates=30, horizon=400, seed=11)
VARIETY = replace(SMALL, satiation=SatiationConfig(strength=1.0))


def test_factors_match_a_brute_force_sum_over_the_items_above() -> None:
    rng = np.random.default_rng(0)
    config = SatiationConfig(strength=0.7)
    codes = rng.integers(3, size=(8, 5)).astype(np.int64)
    positions = rng.permutation(8).astype(np.int64)
    weights = np.asarray(config.weights)
    expected = []
    for i in range(8):
        load = sum(weights[codes[i] == codes[j]].sum() for j in range(8) if positions[j] < positions[i])
        expected.append(np.exp(-0.7 * load))
    assert np.allclose(satiation_factors(codes, positions, config), expected)
    assert satiation_factors(codes, positions, config)[np.argmin(positions)] == 1.0


def test_similarity_is_one_for_identical_items_and_zero_for_disjoint_ones() -> None:
    weights = np.asarray(SatiationConfig().weights)
    codes = np.array([[1, 2, 3, 4, 5], [1, 2, 3, 4, 5], [0, 0, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=np.int64)
    sim = similarity(codes, codes, weights)
    assert sim[0, 1] == pytest.approx(1.0) and sim[0, 2] == 0.0 and sim[0, 3] == pytest.approx(weights[0])


def test_a_slate_of_alike_items_is_clicked_less_than_each_item_alone() -> None:
    plain, variety = Simulator(SMALL), Simulator(VARIETY)
    codes = plain.catalog.codes
    dresses = [f"i{row:05d}" for row in np.flatnonzero(codes[:, 0] == codes[0, 0])[:5]]
    alone = plain.click_probabilities("u0003", dresses, range(5))
    together = variety.click_probabilities("u0003", dresses, range(5))
    assert together[0] == pytest.approx(alone[0])
    assert (together[1:] < alone[1:] * np.exp(-0.4 + 1e-9)).all()  # every one shares at least the category
    assert np.allclose(variety.relevance("u0003", dresses), plain.relevance("u0003", dresses))


def test_sampled_clicks_follow_the_satiated_probabilities() -> None:
    simulator = Simulator(VARIETY)
    rng = np.random.default_rng(1)
    clicks = expected = variance = 0.0
    for _ in range(VARIETY.horizon):
        request, _ = simulator.next_request()
        assert request.candidates is not None
        ids = [request.candidates[int(i)] for i in rng.permutation(len(request.candidates))[:10]]
        p = simulator.click_probabilities(request.user_id, ids, range(len(ids)))
        outcome = simulator.respond(request, make_slate(request, ids))
        assert outcome.expected_clicks == pytest.approx(p.sum())
        clicks += sum(outcome.item_clicked)
        expected += p.sum()
        variance += (p * (1 - p)).sum()
    assert abs(clicks - expected) < 4 * np.sqrt(variance)


def test_oracle_is_at_least_the_relevance_order_and_the_greedy_slate() -> None:
    simulator = Simulator(VARIETY)
    gained = 0
    for _ in range(30):
        request, _ = simulator.next_request()
        assert request.candidates is not None
        relevance = simulator.relevance(request.user_id, request.candidates)
        by_relevance = [request.candidates[i] for i in np.argsort(-relevance, kind="stable")[:10]]
        oracle = simulator.oracle_slate(request)
        value = simulator.click_probabilities(request.user_id, oracle, range(10)).sum()
        plain = simulator.click_probabilities(request.user_id, by_relevance, range(10)).sum()
        assert value >= plain - 1e-12
        gained += value > plain + 1e-9
        outcome = simulator.respond(request, make_slate(request, oracle))
        assert outcome.regret == pytest.approx(0.0, abs=1e-12)
    assert gained > 0  # the relevance order is not the best slate for users who value variety


def test_greedy_slate_picks_the_best_satiated_item_at_each_position() -> None:
    config = SatiationConfig(strength=2.0)
    codes = np.array([[0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=np.int64)
    relevance = np.array([0.5, 0.45, 0.2])
    assert greedy_slate(relevance, codes, 3, config).tolist() == [0, 2, 1]  # 0.45 * e^-2 < 0.2
    assert greedy_slate(relevance, codes, 3, replace(config, strength=0.0)).tolist() == [0, 1, 2]


def test_default_is_off_and_the_stream_is_unchanged() -> None:
    assert not SimulatorConfig().satiation.active

    def outcomes(config: SimulatorConfig) -> list[tuple[bool, ...]]:
        simulator, rng = Simulator(config), np.random.default_rng(3)
        out = []
        for _ in range(40):
            request, _ = simulator.next_request()
            assert request.candidates is not None
            ids = [request.candidates[int(i)] for i in rng.permutation(len(request.candidates))[:10]]
            out.append(simulator.respond(request, make_slate(request, ids)).item_clicked)
        return out

    assert outcomes(SMALL) == outcomes(replace(SMALL, satiation=SatiationConfig(0.0, (0.2,) * 5)))
    assert outcomes(VARIETY) == outcomes(VARIETY)  # seeded
    assert outcomes(VARIETY) != outcomes(SMALL)


@pytest.mark.parametrize(("strength", "weights"), [(-0.1, (0.4, 0.15, 0.15, 0.2, 0.1)), (float("nan"), (0.2,) * 5),
                                                   (1.0, (0.5, 0.5, 0.5, 0.0, 0.0)), (1.0, (1.0, 0.0, 0.0, 0.0))])
def test_config_errors_name_the_field(strength: float, weights: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match=r"SatiationConfig\.(strength|weights)"):
        SatiationConfig(strength, weights)  # type: ignore[arg-type]
