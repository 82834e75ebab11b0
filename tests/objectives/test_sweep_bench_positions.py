"""bench/objectives_sweep.py's grid: position-aware variants of every diversity setting, labelled apart."""

import argparse
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from pydantic import ValidationError

from online.objectives import ObjectiveSettings

BENCH = Path(__file__).resolve().parents[2] / "bench" / "objectives_sweep.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("objectives_sweep_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def grid_args(**overrides: str) -> argparse.Namespace:
    values = {"diversity": "0,2", "fairness": "1", "novelty": "0", "extra": "", "method": "mmr", "shortlist": 0,
              "position_power": "0,1", "from_position": "0,2", "score_units": "standardised"} | overrides
    return argparse.Namespace(**values)


def test_each_diversity_weight_is_crossed_with_the_position_options(bench: ModuleType) -> None:
    settings = bench.settings_of(grid_args())
    labels = [bench.bench_label(s) for s in settings]
    assert labels == ["none", "mmr2", "mmr2>2", "mmr2^1", "mmr2^1>2", "fair1"]
    assert len(set(settings)) == len(settings)
    powered = settings[labels.index("mmr2^1>2")]
    assert (powered.diversity_position_power, powered.diversity_from_position) == (1.0, 2)
    # settings without diversity are not multiplied
    assert settings[labels.index("fair1")].diversity_position_power == 0.0


def test_defaults_give_the_flat_grid(bench: ModuleType) -> None:
    settings = bench.settings_of(grid_args(position_power="0", from_position="0"))
    assert [bench.bench_label(s) for s in settings] == ["none", "mmr2", "fair1"]
    assert settings[1] == ObjectiveSettings(diversity=2.0, shortlist_factor=0)


def test_extra_settings_carry_the_position_fields(bench: ModuleType) -> None:
    args = grid_args(diversity="0", position_power="0", from_position="0",
                     extra='{"diversity": 3, "diversity_position_power": 1.5}')
    assert bench.bench_label(bench.settings_of(args)[-1]) == "mmr3^1.5"


def test_bad_position_options_are_named(bench: ModuleType) -> None:
    with pytest.raises(ValidationError, match="diversity_position_power"):
        bench.settings_of(grid_args(position_power="-1"))
    with pytest.raises(SystemExit, match="--from-position"):
        bench.settings_of(grid_args(from_position="-1"))
    with pytest.raises(SystemExit, match="--from-position"):
        bench.settings_of(grid_args(from_position="x"))


def test_the_ild_method_is_swept_and_labelled(bench: ModuleType) -> None:
    settings = bench.settings_of(grid_args(method="ild", fairness="0", from_position="0"))
    assert [bench.bench_label(s) for s in settings] == ["none", "ild2", "ild2^1"]
    assert all(s.diversity_method == "ild" for s in settings[1:])


def test_score_units_apply_to_every_reranking_setting_and_are_labelled(bench: ModuleType) -> None:
    args = grid_args(diversity="0,0.2", position_power="0", from_position="0", score_units="score",
                     extra='{"diversity": 0.1, "diversity_position_power": 1}')
    settings = bench.settings_of(args)
    assert [bench.bench_label(s) for s in settings] == ["none", "mmr0.2+abs", "fair1+abs", "mmr0.1^1+abs"]
    assert settings[0] == ObjectiveSettings(shortlist_factor=0)  # the baseline re-ranks nothing: unchanged
    assert all(s.score_units == "score" for s in settings[1:])


def test_an_extra_setting_that_names_its_units_keeps_them(bench: ModuleType) -> None:
    args = grid_args(diversity="0", fairness="0", score_units="score",
                     extra='{"diversity": 2, "score_units": "standardised"};{"diversity": 0.1}')
    assert [bench.bench_label(s) for s in bench.settings_of(args)] == ["none", "mmr2", "mmr0.1+abs"]
