"""`--config` on the command line: run and evaluate read the file; bad files fail clearly."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from online.datasets import write_events
from online.events import Click, Impression, Item, RankRequest, ShownItem
from slatestream.cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "slatestream.toml"
START = datetime(2024, 1, 1, tzinfo=UTC)


def log(path: Path) -> Path:
    events: list[Any] = [Item(item_id=f"i{j}", fields={"title": f"item {j}"}, time=START) for j in range(6)]
    for r in range(12):
        time = START + timedelta(seconds=r)
        scenario = "feed" if r % 2 else "ad_slot"
        shown = (ShownItem(item_id=f"i{r % 6}", position=0, propensity=0.5),
                 ShownItem(item_id=f"i{(r + 1) % 6}", position=1, propensity=0.5))
        events += [RankRequest(request_id=f"r{r}", user_id=f"u{r % 2}", scenario=scenario, k=2,
                               candidates=tuple(f"i{j}" for j in range(6)), time=time),
                   Impression(event_id=f"e{r}", request_id=f"r{r}", user_id=f"u{r % 2}", scenario=scenario,
                              shown=shown, time=time)]
        if r % 3 == 0:
            events.append(Click(event_id=f"c{r}", request_id=f"r{r}", user_id=f"u{r % 2}", scenario=scenario,
                                item_id=f"i{r % 6}", time=time))
    write_events(path, events)
    return path


@pytest.fixture(autouse=True)
def no_env_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLATESTREAM_CONFIG", raising=False)


def test_run_serves_the_configured_scenarios(tmp_path: Path) -> None:
    events = log(tmp_path / "log.jsonl")
    result = CliRunner().invoke(main, ["run", str(events), "--state", str(tmp_path / "state"), "--config",
                                       str(EXAMPLE), "--encoder", "hashing", "--dim", "4"])
    assert result.exit_code == 0, result.output
    assert "12 ranked" in result.output and "0 rejected" in result.output


def test_evaluate_uses_the_configured_policies(tmp_path: Path) -> None:
    events = log(tmp_path / "log.jsonl")
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["evaluate", "--data", f"events:{events}", "--config", str(EXAMPLE),
                                       "--out", str(out), "--dim", "4", "--encoder", "hashing", "--n-draws", "16",
                                       "--n-bootstrap", "50"])
    assert result.exit_code == 0, result.output
    assert "policies linear_ts;" in result.output
    assert (out / "report.md").exists()


def test_a_bad_file_names_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[scenarios.feed]\nslate_size = 0\n')
    for command in (["run", str(log(tmp_path / "log.jsonl"))], ["demo", "--requests", "10"]):
        result = CliRunner().invoke(main, [*command, "--config", str(bad), "--encoder", "hashing"])
        assert result.exit_code != 0
        assert "scenarios.feed.slate_size: Input should be greater than or equal to 1" in result.output
