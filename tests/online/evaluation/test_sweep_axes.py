"""`one_axis_settings`: one objective at a time, position-aware variants of every diversity
setting labelled apart, extra settings and score units (the grid of bench/objectives_sweep.py)."""

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from pydantic import ValidationError

from online.evaluation.sweep import label_of, one_axis_settings, parse_positions
from online.objectives import ObjectiveSettings


def grid(diversity: Sequence[float] = (0, 2), fairness: Sequence[float] = (1,), method: Any = "mmr",
         powers: Sequence[float] = (0, 1), starts: Sequence[int] = (0, 2), units: Any = "standardised",
         extra: Sequence[Mapping[str, Any]] = ()) -> list[ObjectiveSettings]:
    return one_axis_settings(diversity, (0,), fairness, method, 0, powers, starts, units, extra)


def test_each_diversity_weight_is_crossed_with_the_position_options() -> None:
    settings = grid()
    labels = [label_of(s) for s in settings]
    assert labels == ["none", "mmr2", "mmr2>2", "mmr2^1", "mmr2^1>2", "fair1"]
    assert len(set(settings)) == len(settings)
    powered = settings[labels.index("mmr2^1>2")]
    assert (powered.diversity_position_power, powered.diversity_from_position) == (1.0, 2)
    assert settings[labels.index("fair1")].diversity_position_power == 0.0  # not multiplied


def test_defaults_give_the_flat_grid() -> None:
    settings = grid(powers=(0,), starts=(0,))
    assert [label_of(s) for s in settings] == ["none", "mmr2", "fair1"]
    assert settings[1] == ObjectiveSettings(diversity=2.0, shortlist_factor=0)


def test_extra_settings_carry_the_position_fields() -> None:
    settings = grid(diversity=(0,), powers=(0,), starts=(0,), extra=[{"diversity": 3, "diversity_position_power": 1.5}])
    assert label_of(settings[-1]) == "mmr3^1.5"


def test_bad_position_options_are_named() -> None:
    with pytest.raises(ValidationError, match="diversity_position_power"):
        grid(powers=(-1,))
    with pytest.raises(ValueError, match="--from-position"):
        parse_positions("-1", "--from-position")
    with pytest.raises(ValueError, match="--from-position"):
        parse_positions("x", "--from-position")


def test_the_ild_method_is_swept_and_labelled() -> None:
    settings = grid(method="ild", fairness=(0,), starts=(0,))
    assert [label_of(s) for s in settings] == ["none", "ild2", "ild2^1"]
    assert all(s.diversity_method == "ild" for s in settings[1:])


def test_score_units_apply_to_every_reranking_setting_and_are_labelled() -> None:
    settings = grid(diversity=(0, 0.2), powers=(0,), starts=(0,), units="score",
                    extra=[{"diversity": 0.1, "diversity_position_power": 1}])
    assert [label_of(s) for s in settings] == ["none", "mmr0.2+abs", "fair1+abs", "mmr0.1^1+abs"]
    assert settings[0] == ObjectiveSettings(shortlist_factor=0)  # the baseline re-ranks nothing: unchanged
    assert all(s.score_units == "score" for s in settings[1:])


def test_an_extra_setting_that_names_its_units_keeps_them() -> None:
    settings = grid(diversity=(0,), fairness=(0,), units="score",
                    extra=[{"diversity": 2, "score_units": "standardised"}, {"diversity": 0.1}])
    assert [label_of(s) for s in settings] == ["none", "mmr2", "mmr0.1+abs"]
