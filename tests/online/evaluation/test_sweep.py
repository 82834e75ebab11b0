"""Pareto fronts, the recommendation rule, the grid and paired changes (online.evaluation.sweep)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from online.evaluation.sweep import (
    SweepGrid,
    SweepPoint,
    label_of,
    paired_change,
    pareto_front,
    parse_positions,
    parse_weights,
    recommend,
)
from online.objectives import ObjectiveSettings


def test_pareto_front_of_a_hand_made_point_set_maximising_both() -> None:
    # (CTR, ILD): b dominates a; c and d trade off; e is dominated by d; f ties d exactly (neither dominates)
    ctr = [0.040, 0.045, 0.050, 0.042, 0.041, 0.042]
    ild = [0.70, 0.72, 0.60, 0.90, 0.85, 0.90]
    assert pareto_front(ctr, ild).tolist() == [False, True, True, True, False, True]


def test_pareto_front_minimising_the_second_criterion() -> None:
    # (CTR, Gini), lower Gini is better: (0.05, 0.30) dominates (0.04, 0.40); (0.03, 0.10) trades off
    ctr, gini = [0.05, 0.04, 0.03, 0.05], [0.30, 0.40, 0.10, 0.35]
    assert pareto_front(ctr, gini, (True, False)).tolist() == [True, False, True, False]
    # maximising both instead: (0.05, 0.35) dominates the first and third; (0.04, 0.40) trades off with it
    assert pareto_front(ctr, gini).tolist() == [False, True, False, True]


def test_pareto_front_skips_nan_and_checks_shapes() -> None:
    assert pareto_front([0.1, math.nan, 0.05], [0.5, 9.0, 0.6]).tolist() == [True, False, True]
    with pytest.raises(ValueError, match="equal length"):
        pareto_front([0.1, 0.2], [0.3])


def _point(label: str, ctr: float, ild: float, gini: float) -> SweepPoint:
    return SweepPoint(label, ObjectiveSettings(), ctr, ild, gini)


POINTS = [
    _point("none", 0.050, 0.70, 0.50),
    _point("a", 0.049, 0.80, 0.45),   # -2% CTR
    _point("b", 0.048, 0.95, 0.40),   # -4% CTR: the most diverse within 5%
    _point("c", 0.040, 1.05, 0.20),   # -20% CTR: more diverse and fairer, but too costly
    _point("d", 0.0476, 0.75, 0.30),  # -4.8% CTR: the fairest within 5%
    _point("e", 0.049, 0.95, 0.42),   # same ILD as b, higher CTR: wins the tie
]


def test_recommend_takes_the_best_target_within_the_ctr_floor() -> None:
    assert recommend(POINTS, POINTS[0], "ild") == 5
    assert recommend(POINTS, POINTS[0], "gini") == 4
    assert recommend(POINTS, POINTS[0], "gini", max_ctr_loss=0.25) == 3
    assert recommend(POINTS, POINTS[0], "ild", max_ctr_loss=0.0) == 0  # only the baseline itself qualifies
    low = [_point("x", 0.01, 2.0, 0.0)]
    assert recommend(low, POINTS[0], "ild") is None


def test_the_recommended_point_is_pareto_optimal() -> None:
    ctr = [p.ctr for p in POINTS]
    assert pareto_front(ctr, [p.ild for p in POINTS])[recommend(POINTS, POINTS[0], "ild")]
    assert pareto_front(ctr, [p.gini for p in POINTS], (True, False))[recommend(POINTS, POINTS[0], "gini")]


def test_recommend_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_ctr_loss"):
        recommend(POINTS, POINTS[0], "ild", max_ctr_loss=1.5)
    with pytest.raises(ValueError, match="target"):
        recommend(POINTS, POINTS[0], "ndcg")  # type: ignore[arg-type]


def test_grid_puts_the_baseline_first_without_duplicates() -> None:
    settings = SweepGrid(diversity=(0.0, 5.0), novelty=(0.0,), fairness=(0.0, 1.0), method="dpp",
                         shortlist_factor=0).settings()
    assert [label_of(s) for s in settings] == ["none", "fair1", "dpp5", "dpp5+fair1"]
    assert not settings[0].reranks and all(s.shortlist_factor == 0 for s in settings)
    assert [label_of(s) for s in SweepGrid(diversity=(2.0,), fairness=(1.0,)).settings()] == ["none", "mmr2+fair1"]
    with pytest.raises(ValueError, match="fairness"):
        SweepGrid(fairness=(-1.0,))
    with pytest.raises(ValueError, match="diversity"):
        SweepGrid(diversity=())


def test_grid_crosses_diversity_with_the_position_options_and_labels_them_apart() -> None:
    grid = SweepGrid(diversity=(0.0, 2.0), fairness=(0.0, 1.0), method="ild", position_power=(0.0, 1.0),
                     from_position=(0, 2))
    settings = grid.settings()
    labels = [label_of(s) for s in settings]
    assert labels == ["none", "fair1", "ild2", "ild2>2", "ild2^1", "ild2^1>2",
                      "ild2+fair1", "ild2>2+fair1", "ild2^1+fair1", "ild2^1>2+fair1"]
    assert len(set(labels)) == len(labels) == len(set(settings))
    powered = settings[labels.index("ild2^1>2")]
    assert (powered.diversity_method, powered.diversity_position_power, powered.diversity_from_position) == (
        "ild", 1.0, 2)
    # settings without diversity keep the flat defaults (the position fields would not act)
    assert settings[labels.index("fair1")].diversity_position_power == 0.0
    # the defaults give the flat grid
    assert SweepGrid(diversity=(2.0,), fairness=(0.0,)).settings()[1] == ObjectiveSettings(diversity=2.0)


def test_grid_gives_every_reranking_setting_its_units_and_order() -> None:
    settings = SweepGrid(diversity=(0.0, 0.2), fairness=(0.0, 1.0), method="ild", score_units="score",
                         slate_order="utility").settings()
    assert [label_of(s) for s in settings] == ["none", "fair1+abs", "ild0.2+abs+sorted", "ild0.2+fair1+abs+sorted"]
    assert settings[0] == ObjectiveSettings()  # the baseline stays plain relevance ranking
    assert all(s.score_units == "score" and s.slate_order == "utility" for s in settings[1:])


def test_grid_names_bad_position_options() -> None:
    with pytest.raises(ValueError, match="position_power"):
        SweepGrid(position_power=(-1.0,))
    with pytest.raises(ValueError, match="position_power"):
        SweepGrid(position_power=(9.0,))
    with pytest.raises(ValueError, match="position_power"):
        SweepGrid(position_power=())
    with pytest.raises(ValueError, match="from_position"):
        SweepGrid(from_position=(-1,))
    with pytest.raises(ValueError, match="from_position"):
        SweepGrid(from_position=(1.5,))  # type: ignore[arg-type]


def test_parse_positions_names_the_option() -> None:
    assert parse_positions("0, 2", "--from-position") == (0, 2)
    for bad in ("x", "-1", "", "1.5"):
        with pytest.raises(ValueError, match="--from-position"):
            parse_positions(bad, "--from-position")


def test_parse_weights_names_the_option() -> None:
    assert parse_weights("0, 2,5", "--diversity") == (0.0, 2.0, 5.0)
    with pytest.raises(ValueError, match="--novelty"):
        parse_weights("1,x", "--novelty")


def test_paired_change_is_the_mean_per_seed_difference_in_percent_of_the_baseline() -> None:
    change = paired_change([0.04, 0.05, 0.06], [0.038, 0.048, 0.056])
    assert change.percent == pytest.approx(-100 * 0.008 / 3 / 0.05)
    diffs = np.array([-0.002, -0.002, -0.004]) * 100 / 0.05
    half = 4.302652729911275 * diffs.std(ddof=1) / np.sqrt(3)  # t(0.975, 2)
    assert (change.low, change.high) == pytest.approx((diffs.mean() - half, diffs.mean() + half))
    single = paired_change([0.05], [0.045])
    assert single.percent == pytest.approx(-10.0) and math.isnan(single.low)
    with pytest.raises(ValueError, match="per-seed"):
        paired_change([0.1, 0.2], [0.1])
