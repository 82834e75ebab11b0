"""`slatestream evaluate` embeds with the worker's projection, read from the real broker.

A projection is agreed through `<prefix>projection` as the worker agrees it; `evaluate` with a
broker configured uses it by default and the report names its key, offset and fitted_on;
`projection show --out` saves it for offline use; where the topic holds none for the encoder and
d, `auto` fits on the log and says so, and `topic` refuses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from encoders.hashing import HashingEncoder
from encoders.projection import PcaProjection
from slatestream.cli import main
from streams.projection import agree_on_projection, load_projection
from streams.settings import StreamSettings
from tests.slatestream.test_evaluate_projection import write_log

pytestmark = pytest.mark.kafka
ENCODER = HashingEncoder(dim=256)


def evaluate(tmp_path: Path, out: str, *extra: str) -> tuple[Any, dict[str, Any]]:
    log = tmp_path / "log.jsonl"
    if not log.exists():
        write_log(log)
    result = CliRunner().invoke(main, ["evaluate", "--data", f"events:{log}", "--policies", "uniform_random",
                                       "--encoder", "hashing", "--n-bootstrap", "50", "--out", str(tmp_path / out),
                                       *extra])
    payload = json.loads((tmp_path / out / "evaluation.json").read_text()) if result.exit_code == 0 else {}
    return result, payload


def test_evaluate_uses_the_published_projection_and_says_which(
        kafka_settings: StreamSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLATESTREAM_BROKER_URL", kafka_settings.broker_url)
    monkeypatch.setenv("SLATESTREAM_TOPIC_PREFIX", kafka_settings.topic_prefix)
    key = f"{ENCODER.fingerprint}/d4"
    agreed = agree_on_projection(kafka_settings, key, lambda: (
        PcaProjection.fit(ENCODER.encode([f"the worker's catalogue {n}" for n in range(30)]), 4, 0), 30))

    result, payload = evaluate(tmp_path, "served", "--dim", "4")
    assert result.exit_code == 0, result.output
    used = payload["projection"]
    assert (used["source"], used["key"], used["version"], used["offset"], used["fitted_on"]) == (
        "topic", key, agreed.projection.version, agreed.offset, 30)
    assert f"read from {kafka_settings.topic_prefix}projection at offset {agreed.offset}" in (
        tmp_path / "served" / "report.md").read_text()

    shown = CliRunner().invoke(main, ["projection", "show", "--encoder", "hashing", "--dim", "4",
                                      "--out", str(tmp_path / "saved.bin")])
    assert shown.exit_code == 0, shown.output
    saved, topic = load_projection(tmp_path / "saved.bin")
    assert (saved.projection.version, saved.offset, saved.fitted_on, topic) == (
        agreed.projection.version, agreed.offset, 30, f"{kafka_settings.topic_prefix}projection")
    monkeypatch.delenv("SLATESTREAM_BROKER_URL")  # offline, from the file
    result, payload = evaluate(tmp_path, "offline", "--dim", "4", "--projection", str(tmp_path / "saved.bin"))
    assert result.exit_code == 0, result.output
    assert (payload["projection"]["source"], payload["projection"]["version"]) == ("file", agreed.projection.version)

    monkeypatch.setenv("SLATESTREAM_BROKER_URL", kafka_settings.broker_url)
    result, payload = evaluate(tmp_path, "d6", "--dim", "6")  # the topic holds none for d = 6
    assert result.exit_code == 0, result.output
    assert payload["projection"]["source"] == "fitted"
    assert f"none published for {ENCODER.fingerprint}/d6" in payload["projection"]["note"]
    refused, _ = evaluate(tmp_path, "d6-topic", "--dim", "6", "--projection", "topic")
    assert refused.exit_code != 0 and "no projection published" in refused.output


def test_a_prefix_without_a_projection_topic_fits_on_the_log(
        kafka_settings: StreamSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLATESTREAM_BROKER_URL", kafka_settings.broker_url)
    monkeypatch.setenv("SLATESTREAM_TOPIC_PREFIX", kafka_settings.topic_prefix)  # nothing created under it
    result, payload = evaluate(tmp_path, "fresh", "--dim", "4")
    assert result.exit_code == 0, result.output
    assert payload["projection"]["source"] == "fitted" and "none published" in payload["projection"]["note"]
