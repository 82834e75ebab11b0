"""`slatestream evaluate` end to end on small OBD, MIND and event-log fixtures (click's CliRunner)."""

from __future__ import annotations

import importlib.util
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from online.datasets import write_events
from online.events import Click, Impression, Item, RankRequest, ShownItem
from slatestream.cli import main
from slatestream.evaluate import OBD_CAVEAT, evaluate_command


def _dataset_fixtures() -> Any:
    """tests/online/datasets/conftest.py (its OBD and MIND writers), loaded by path."""
    path = Path(__file__).parents[1] / "online" / "datasets" / "conftest.py"
    spec = importlib.util.spec_from_file_location("dataset_fixtures_cli", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FIXTURES = _dataset_fixtures()
FAST = ["--encoder", "hashing", "--n-draws", "32", "--n-bootstrap", "100", "--seed", "1"]


def _check_outputs(out: Path) -> dict[str, Any]:
    payload = json.loads((out / "evaluation.json").read_text())
    report = (out / "report.md").read_text()
    for plot in ("estimates.png", "ctr_over_log.png"):
        assert (out / plot).stat().st_size > 1000
        assert f"]({plot})" in report
    return payload


def test_evaluate_is_mounted_on_the_cli() -> None:
    assert main.get_command(None, "evaluate") is evaluate_command  # type: ignore[arg-type]


def test_evaluate_obd_end_to_end(tmp_path: Path) -> None:
    FIXTURES.write_obd(tmp_path / "obd", n_rows=40)
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["evaluate", "--data", f"obd:{tmp_path / 'obd'}", "--policies",
                                       "uniform_random,bernoulli_ts,linear_ts", "--out", str(out), "--dim", "4", *FAST])
    assert result.exit_code == 0, result.output
    payload = _check_outputs(out)
    assert payload["counts"]["rounds_evaluated"] == 40
    assert [p["policy"] for p in payload["policies"]] == ["uniform_random", "bernoulli_ts", "linear_ts"]
    assert payload["sanity"]["policy"] == "uniform_random"
    assert payload["policies"][0]["estimates"]["ips"]["value"] == pytest.approx(payload["on_policy"]["value"])
    report = (out / "report.md").read_text()
    assert OBD_CAVEAT in report and "slatestream demo" in report


def test_evaluate_mind_and_max_rounds(tmp_path: Path) -> None:
    (tmp_path / "behaviors.tsv").write_text("".join("\t".join(c) + "\n" for c in FIXTURES.BEHAVIORS))
    (tmp_path / "news.tsv").write_text("".join("\t".join(c) + "\n" for c in FIXTURES.NEWS))
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["evaluate", "--data", f"mind:{tmp_path}", "--policies", "bernoulli_ts",
                                       "--out", str(out), "--max-rounds", "3", "--dim", "2", *FAST])
    assert result.exit_code == 0, result.output
    payload = _check_outputs(out)
    assert payload["counts"]["rounds"] == 3
    assert set(payload["policies"][0]["estimates"]) == {"replay"}


def test_evaluate_event_log(tmp_path: Path) -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    events: list[Any] = [Item(item_id=f"i{j}", fields={"title": f"item {j}"}, provider=f"p{j % 2}", time=start)
                         for j in range(4)]
    for r in range(12):
        time = start + timedelta(seconds=r)
        shown = (ShownItem(item_id=f"i{r % 4}", position=0, propensity=0.25),
                 ShownItem(item_id=f"i{(r + 1) % 4}", position=1, propensity=0.25))
        events += [RankRequest(request_id=f"r{r}", user_id="u", k=2, time=time),
                   Impression(event_id=f"e{r}", request_id=f"r{r}", user_id="u", shown=shown, time=time)]
        if r % 3 == 0:
            events.append(Click(event_id=f"c{r}", request_id=f"r{r}", user_id="u", item_id=f"i{r % 4}", time=time))
    path = tmp_path / "log.jsonl"
    write_events(path, events)
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["evaluate", "--data", f"events:{path}", "--policies", "most_popular",
                                       "--out", str(out), "--dim", "4", *FAST])
    assert result.exit_code == 0, result.output
    payload = _check_outputs(out)
    estimates = payload["policies"][0]["estimates"]
    assert {"ips", "snips", "dr", "slate_iips"} <= set(estimates)
    assert not {"slate_rips", "slate_sips"} & set(estimates)  # no prefix propensities in this log
    assert any("slate_rips and slate_sips skipped" in note for note in payload["notes"])
    assert payload["policies"][0]["metrics"]["provider_exposure_gini"] is not None


def test_evaluate_keeps_the_clicks_of_a_replayed_log_with_their_round(tmp_path: Path) -> None:
    """Requests of two users a second apart, each click 3 s after its request (event-time order, as
    `slatestream replay` writes): by default an events: log's rounds wait for their clicks; with
    --attribution-window 0 a round closes at the next request and its clicks are lost."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    events: list[Any] = [Item(item_id=f"i{j}", fields={"title": f"item {j}"}, time=start) for j in range(4)]
    timed: list[tuple[float, int, Any]] = []
    for r in range(12):
        time, user, item = start + timedelta(seconds=r), f"u{r % 2}", f"i{r % 4}"
        shown = (ShownItem(item_id=item, position=0, propensity=0.25),)
        timed += [(r, 0, RankRequest(request_id=f"r{r}", user_id=user, k=1, time=time)),
                  (r + 0.2, 1, Impression(event_id=f"e{r}", request_id=f"r{r}", user_id=user, shown=shown,
                                          time=time + timedelta(seconds=0.2)))]
        if r % 2 == 0:
            timed.append((r + 3, 2, Click(event_id=f"c{r}", request_id=f"r{r}", user_id=user, item_id=item,
                                          time=time + timedelta(seconds=3))))
    path = tmp_path / "replayed.jsonl"
    write_events(path, events + [event for *_, event in sorted(timed, key=lambda t: (t[0], t[1]))])
    payloads = []
    for extra in ([], ["--attribution-window", "0"]):
        out = tmp_path / f"report{len(extra)}"
        result = CliRunner().invoke(main, ["evaluate", "--data", f"events:{path}", "--policies", "uniform_random",
                                           "--out", str(out), "--dim", "4", *FAST, *extra])
        assert result.exit_code == 0, result.output
        payloads.append(json.loads((out / "evaluation.json").read_text()))
    kept, lost = payloads
    assert kept["settings"]["attribution_s"] == 1800.0 and lost["settings"]["attribution_s"] is None
    assert kept["on_policy"]["value"] == pytest.approx(0.5) and kept["counts"]["stray_feedback"] == 0
    assert lost["on_policy"]["value"] < 0.1 and lost["counts"]["stray_feedback"] >= 5


def test_evaluate_rejects_bad_arguments(tmp_path: Path) -> None:
    runner = CliRunner()
    bad_kind = runner.invoke(main, ["evaluate", "--data", "csv:x", "--out", str(tmp_path)])
    assert bad_kind.exit_code != 0 and "obd:PATH" in bad_kind.output
    bad_policy = runner.invoke(main, ["evaluate", "--data", f"events:{tmp_path}", "--policies", "nope",
                                      "--out", str(tmp_path)])
    assert bad_policy.exit_code != 0 and "unknown policies" in bad_policy.output
