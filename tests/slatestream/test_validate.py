"""`slatestream validate`: what a configuration serves, and an events file checked against it."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from online.datasets import write_events
from online.events import Click, Item, RankRequest
from slatestream.cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "slatestream.toml"
START = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def no_env_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLATESTREAM_CONFIG", raising=False)


def events_file(path: Path, extra: list[Any], bad_line: bool = False) -> Path:
    events: list[Any] = [Item(item_id=f"i{j}", fields={"title": f"item {j}"}, attributes={"section": "sport"},
                              time=START) for j in range(4)]
    events += [RankRequest(request_id="r1", user_id="u1", scenario="feed", time=START), *extra]
    write_events(path, events)
    if bad_line:
        with path.open("a") as lines:
            lines.write('{"type": "click", "user_id": 7}\n')
    return path


def test_the_example_configuration_is_described_and_ok() -> None:
    result = CliRunner().invoke(main, ["validate", "--config", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert "scenario feed: 10 items" in result.output
    assert "scenario ad_slot: 3 items, candidates request" in result.output
    assert "fallback scenario: none" in result.output and result.output.strip().endswith("configuration: ok")


def test_shadows_are_described(tmp_path: Path) -> None:
    config = tmp_path / "shadows.toml"
    config.write_text('[[shadows]]\nname = "explore"\npolicy = { name = "linear_ts", params = { exploration = 1.0 } }\n'
                      '[leaderboard]\nwindow_rounds = 5000\n')
    result = CliRunner().invoke(main, ["validate", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "shadow explore: policy linear_ts (exploration=1.0) on every scenario, never served" in result.output
    assert "leaderboard: the last 5000 rounds" in result.output


def test_a_clean_events_file_passes(tmp_path: Path) -> None:
    data = events_file(tmp_path / "day.jsonl", [RankRequest(request_id="r2", user_id="u2", scenario="ad_slot",
                                                            candidates=("i1", "i2"), time=START)])
    result = CliRunner().invoke(main, ["validate", "--config", str(EXAMPLE), "--data", str(data)])
    assert result.exit_code == 0, result.output
    assert "events: 4 Item, 2 RankRequest" in result.output and result.output.strip().endswith(f"{data}: ok")


def test_every_refusal_is_named_and_fails(tmp_path: Path) -> None:
    extra = [RankRequest(request_id="r2", user_id="u2", scenario="ad_slot", time=START),
             RankRequest(request_id="r3", user_id="u3", scenario="newsletter", time=START),
             Click(event_id="c1", request_id="r1", user_id="u1", item_id="ghost", time=START)]
    data = events_file(tmp_path / "day.jsonl", extra, bad_line=True)
    result = CliRunner().invoke(main, ["validate", "--config", str(EXAMPLE), "--data", str(data)])
    assert result.exit_code == 1
    assert "1 line(s) could not be decoded" in result.output
    assert "takes its candidates from the request, and the request brings none (e.g. r2)" in result.output
    assert "scenario 'newsletter' is not configured" in result.output and "(e.g. r3)" in result.output
    assert "warning: 1 feedback reference(s) to 1 item(s) the file never declares (e.g. ghost)" in result.output


def test_filters_no_item_passes_are_a_problem(tmp_path: Path) -> None:
    config = tmp_path / "news.toml"
    config.write_text('[scenarios.feed.filters]\nrequired_attributes = { section = ["politics"] }\n')
    data = events_file(tmp_path / "day.jsonl", [])
    result = CliRunner().invoke(main, ["validate", "--config", str(config), "--data", str(data)])
    assert result.exit_code == 1
    assert "scenario feed: its filters pass none of the file's 4 active items" in result.output
    config.write_text('[scenarios.feed.filters]\nrequired_attributes = { section = ["sport"] }\n')
    result = CliRunner().invoke(main, ["validate", "--config", str(config), "--data", str(data)])
    assert result.exit_code == 0, result.output


def test_a_bad_configuration_lists_its_errors(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[scenarios.feed]\nslatesize = 3\n')
    result = CliRunner().invoke(main, ["validate", "--config", str(config)])
    assert result.exit_code != 0 and "scenarios.feed.slatesize" in result.output
