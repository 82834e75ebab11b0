"""`evaluate --projection`: which projection the log's items are embedded with, said in the report.

Offline: with no broker configured the projection is fitted on the log (and the report says it
is not the worker's); a file saved by `projection show --out` is used as it is; a file of another
encoder or d, or not a projection, is refused. The broker's topic: tests/integration/test_evaluate_served.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from encoders.hashing import HashingEncoder
from encoders.projection import PcaProjection
from online.datasets import write_events
from online.events import Click, Impression, Item, RankRequest, ShownItem
from slatestream.cli import main
from streams.projection import PublishedProjection, load_projection, save_projection

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ENCODER = HashingEncoder(dim=256)


def write_log(path: Path) -> None:
    items = [Item(item_id=f"i{j}", fields={"title": f"item {j} {'red' if j % 2 else 'blue'}"}, time=T0)
             for j in range(8)]
    events: list[Any] = list(items)
    rng = np.random.default_rng(0)
    for r in range(60):
        time = T0 + timedelta(seconds=r)
        shown = tuple(ShownItem(item_id=f"i{j}", position=p) for p, j in enumerate(rng.permutation(8)[:3]))
        events += [RankRequest(request_id=f"r{r}", user_id=f"u{r % 4}", k=3, time=time),
                   Impression(event_id=f"e{r}", request_id=f"r{r}", user_id=f"u{r % 4}", shown=shown, time=time)]
        if rng.random() < 0.3:
            events.append(Click(event_id=f"c{r}", request_id=f"r{r}", user_id=f"u{r % 4}",
                                item_id=shown[0].item_id, time=time))
    write_events(path, events)


def saved_projection(path: Path, dim: int = 4) -> PcaProjection:
    """A projection fitted on other texts than the log's, saved as `projection show --out` saves."""
    projection = PcaProjection.fit(ENCODER.encode([f"another catalogue {n}" for n in range(20)]), dim, 0)
    found = PublishedProjection(f"{ENCODER.fingerprint}/d{dim}", projection, 7, 20, "2026-01-01T00:00:00+00:00")
    save_projection(path, found, "prod.projection")
    return projection


def evaluate(tmp_path: Path, *extra: str) -> Any:
    log = tmp_path / "log.jsonl"
    if not log.exists():
        write_log(log)
    return CliRunner().invoke(main, ["evaluate", "--data", f"events:{log}", "--policies", "uniform_random",
                                     "--encoder", "hashing", "--dim", "4", "--n-bootstrap", "50",
                                     "--out", str(tmp_path / "out"), *extra])


def report(tmp_path: Path) -> tuple[dict[str, Any], str]:
    return (json.loads((tmp_path / "out" / "evaluation.json").read_text()),
            (tmp_path / "out" / "report.md").read_text())


def test_without_a_broker_the_projection_is_fitted_on_the_log_and_the_report_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLATESTREAM_BROKER_URL", raising=False)
    result = evaluate(tmp_path)
    assert result.exit_code == 0, result.output
    payload, text = report(tmp_path)
    assert payload["projection"]["source"] == "fitted" and payload["projection"]["fitted_on"] == 8
    assert "no broker configured" in payload["projection"]["note"] and "not the worker's" in text


def test_a_saved_projection_is_used_as_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLATESTREAM_BROKER_URL", raising=False)
    projection = saved_projection(tmp_path / "projection.bin")
    loaded, topic = load_projection(tmp_path / "projection.bin")
    assert (loaded.projection.version, loaded.offset, loaded.fitted_on, topic) == (
        projection.version, 7, 20, "prod.projection")
    result = evaluate(tmp_path, "--projection", str(tmp_path / "projection.bin"))
    assert result.exit_code == 0, result.output
    payload, text = report(tmp_path)
    used = payload["projection"]
    assert (used["source"], used["version"], used["offset"], used["fitted_on"]) == ("file", projection.version, 7, 20)
    assert f"PCA {projection.version}" in text and "read from prod.projection at offset 7" in text


def test_a_projection_of_another_dimension_or_not_a_projection_is_refused(tmp_path: Path) -> None:
    saved_projection(tmp_path / "d6.bin", dim=6)
    other = evaluate(tmp_path, "--projection", str(tmp_path / "d6.bin"))
    assert other.exit_code != 0 and "/d6; this evaluation embeds with" in other.output
    (tmp_path / "junk.bin").write_bytes(b"\x05\x00\x00\x00{}")
    junk = evaluate(tmp_path, "--projection", str(tmp_path / "junk.bin"))
    assert junk.exit_code != 0 and "not a projection record" in junk.output
    missing = evaluate(tmp_path, "--projection", str(tmp_path / "nowhere.bin"))
    assert missing.exit_code != 0 and "not auto, topic, fit or a file" in missing.output
