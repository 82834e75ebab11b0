"""`slatestream sweep` end to end on a tiny OBD fixture and a short simulator run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from online.evaluation.sweep import SweepPoint
from online.evaluation.sweep_points import OBD_SWEEP_CAVEAT, obd_item_embed
from online.objectives import ObjectiveSettings
from slatestream.cli import main
from slatestream.reports.sweep import write_sweep_report


def _dataset_fixtures() -> Any:
    path = Path(__file__).parents[1] / "online" / "datasets" / "conftest.py"
    spec = importlib.util.spec_from_file_location("dataset_fixtures_sweep", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FIXTURES = _dataset_fixtures()
GRID = ["--diversity", "0,5", "--fairness", "0,1", "--n-bootstrap", "50", "--seed", "1"]


def _check(out: Path, n_points: int) -> dict[str, Any]:
    payload = json.loads((out / "sweep.json").read_text())
    report = (out / "sweep.md").read_text()
    for plot in ("frontier_ild.png", "frontier_gini.png"):
        assert (out / plot).stat().st_size > 1000
        assert f"]({plot})" in report
    assert [p["label"] for p in payload["points"]] == ["none", "fair1", "mmr5", "mmr5+fair1"][:n_points]
    assert payload["points"][0]["settings"] == {}
    assert any(p["pareto_ild"] for p in payload["points"]) and any(p["pareto_gini"] for p in payload["points"])
    assert set(payload["recommended"]) == {"ild", "gini"}
    return payload


def test_sweep_on_obd(tmp_path: Path) -> None:
    FIXTURES.write_obd(tmp_path / "obd", n_rows=40)
    out = tmp_path / "sweep"
    result = CliRunner().invoke(main, ["sweep", "--data", f"obd:{tmp_path / 'obd'}", "--out", str(out),
                                       "--n-draws", "16", "--dim", "4", *GRID])
    assert result.exit_code == 0, result.output
    payload = _check(out, 4)
    assert OBD_SWEEP_CAVEAT in (out / "sweep.md").read_text()
    points = payload["points"]
    assert all(p["ctr_estimator"] == "snips" for p in points)
    assert points[2]["ild"] > points[0]["ild"]  # MMR 5 diversifies the served slates


def test_sweep_on_the_simulator(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    result = CliRunner().invoke(main, ["sweep", "--data", "sim", "--out", str(out), "--requests", "40",
                                       "--encoder", "hashing", "--dim", "8", "--n-draws", "8", *GRID])
    assert result.exit_code == 0, result.output
    payload = _check(out, 4)
    assert all(len(p["per_seed"]["ctr"]) == 1 for p in payload["points"])
    assert payload["points"][2]["ild"] > payload["points"][0]["ild"]


def small_ild_sweep(out: Path, *options: str) -> list[dict[str, Any]]:
    """The points of a 30-request ILD sweep on the simulator with `options` added."""
    result = CliRunner().invoke(main, ["sweep", "--data", "sim", "--out", str(out), "--requests", "30",
                                       "--encoder", "hashing", "--dim", "8", "--n-draws", "8", "--n-bootstrap", "20",
                                       "--fairness", "0", "--method", "ild", *options])
    assert result.exit_code == 0, result.output
    points: list[dict[str, Any]] = json.loads((out / "sweep.json").read_text())["points"]
    return points


def test_sweep_on_the_simulator_with_position_aware_ild(tmp_path: Path) -> None:
    points = small_ild_sweep(tmp_path / "positions", "--diversity", "0,3", "--position-power", "0,1",
                             "--from-position", "0,2")
    assert [p["label"] for p in points] == ["none", "ild3", "ild3>2", "ild3^1", "ild3^1>2"]
    assert points[4]["settings"] == {"diversity": 3.0, "diversity_method": "ild", "diversity_position_power": 1.0,
                                     "diversity_from_position": 2}


def test_sweep_on_the_simulator_in_score_units_served_by_utility(tmp_path: Path) -> None:
    points = small_ild_sweep(tmp_path / "units", "--diversity", "0,0.2", "--score-units", "score",
                             "--slate-order", "utility")
    assert [p["label"] for p in points] == ["none", "ild0.2+abs+sorted"]
    assert points[1]["settings"] == {"diversity": 0.2, "diversity_method": "ild", "score_units": "score",
                                     "slate_order": "utility"}


def test_sweep_rejects_bad_options(tmp_path: Path) -> None:
    runner = CliRunner()
    plain = runner.invoke(main, ["evaluate", "--data", "sim", "--out", str(tmp_path)])
    assert plain.exit_code != 0 and "want obd:PATH, mind:PATH or events:PATH" in plain.output
    weights = runner.invoke(main, ["sweep", "--data", "sim", "--out", str(tmp_path), "--diversity", "a"])
    assert weights.exit_code != 0 and "--diversity" in weights.output
    two = runner.invoke(main, ["sweep", "--data", "sim", "--out", str(tmp_path), "--policy",
                               "linear_ts,bernoulli_ts"])
    assert two.exit_code != 0 and "one registered policy" in two.output
    for option, value, named in (("--position-power", "-1", "position_power"),
                                 ("--position-power", "a", "--position-power"),
                                 ("--from-position", "1.5", "--from-position"),
                                 ("--slate-order", "random", "--slate-order")):
        bad = runner.invoke(main, ["sweep", "--data", "sim", "--out", str(tmp_path), option, value])
        assert bad.exit_code != 0 and named in bad.output, bad.output


def test_report_needs_the_baseline_first(tmp_path: Path) -> None:
    point = SweepPoint("mmr5", ObjectiveSettings(diversity=5.0), 0.05, 0.9, 0.4)
    with pytest.raises(ValueError, match="baseline"):
        write_sweep_report([point], tmp_path, "x", [], {})


def test_obd_item_vectors_are_unit_length_by_item_id() -> None:
    features = np.array([[0.5, 1, 0], [-0.5, 0, 1], [2.0, 1, 0], [0.0, 0, 1]])
    embed = obd_item_embed(features, 2)

    class _Item:
        def __init__(self, item_id: str) -> None:
            self.item_id = item_id

    vectors = embed([_Item("2"), _Item("0")])  # type: ignore[list-item]
    assert vectors.shape == (2, 2)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert np.allclose(vectors[1], embed([_Item("0")])[0])  # type: ignore[list-item]
