"""`evaluate --snapshot` over a worker's data directory checks its copies against the state
changelog on a real broker: a partition whose changelog population state includes more than the
copy read is reported behind (stderr, report, evaluation.json), or refused with --fresh-snapshots;
copies as far as it are said to be.
`latest_of_keys` finds a key's latest record further back than its first window."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from slatestream.worker_snapshot import PartitionSnapshotStore
from streams.settings import StreamSettings
from streams.state_changelog import latest_of_keys, state_changelog_topic
from streams.testing.modules import load_module
from streams.worker.table_store import wrap

DEPLOY = load_module("worker_deployment_helpers",
                     Path(__file__).resolve().parents[1] / "slatestream" / "test_evaluate_worker_deployment.py")
PARTITIONS = DEPLOY.PARTITIONS
POPULATION = "linear_ts/global/{}"


def create_changelog(settings: StreamSettings) -> str:
    topic = state_changelog_topic(settings)
    with KafkaAdminClient(**settings.kafka_client_config()) as admin:
        admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    return topic


def send(settings: StreamSettings, records: list[tuple[int, bytes, bytes | None]]) -> None:
    """(partition, key, value) records to the changelog, in order."""
    producer = KafkaProducer(**settings.kafka_client_config(), acks="all")
    try:
        for partition, key, value in records:
            producer.send(state_changelog_topic(settings), key=key, value=value, partition=partition)
        producer.flush()
    finally:
        producer.close()


def filler(partition: int, n: int) -> list[tuple[int, bytes, bytes | None]]:
    """n user-state records (what follows a population write in a real changelog)."""
    return [(partition, f"linear_ts/user/filler-{i}".encode(), wrap({}, b"user")) for i in range(n)]


def test_the_latest_record_of_a_key_is_found_beyond_the_first_window(kafka_settings: StreamSettings) -> None:
    create_changelog(kafka_settings)
    key = POPULATION.format(0).encode()
    send(kafka_settings, [(0, key, wrap({0: 1}, b"old")), *filler(0, 10), (0, key, wrap({0: 2}, b"new")),
                          *filler(0, 700), (1, POPULATION.format(1).encode(), None)])
    found = latest_of_keys(kafka_settings, {0: [key, b"never-written"], 1: [POPULATION.format(1).encode()]},
                           first_window=256)
    assert set(found) == {key, POPULATION.format(1).encode()}
    assert found[key].offset == 11 and found[key].unwrapped() == ({0: 2}, b"new")
    assert found[POPULATION.format(1).encode()].value is None  # a tombstone is the latest record


@pytest.fixture(scope="module")
def stopped_worker(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One worker's data directory (every partition) after learning, and its served log."""
    root = tmp_path_factory.mktemp("changelog-snapshot")
    run = DEPLOY.run_worker(root, DEPLOY.CONFIG, DEPLOY.ONE.WorkerTables(root / "store"), lambda n: "default")
    return {**run, "store": root / "store"}


def applied_in_copy(store: Path, partition: int) -> dict[int, int]:
    """What the copy's linear TS population state includes, as topic index -> offset."""
    db = PartitionSnapshotStore(store / "v1" / "tables" / f"state-{partition}.db")
    try:
        applied = db.copy_of(store, partition, ("linear_ts",)).applied["linear_ts"]
    finally:
        db.close()
    return {("impressions", "clicks").index(topic): offset for topic, offset in applied.items()}


def test_a_copy_behind_the_changelog_is_reported(stopped_worker: dict[str, Any], kafka_settings: StreamSettings,
                                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLATESTREAM_BROKER_URL", kafka_settings.broker_url)
    monkeypatch.setenv("SLATESTREAM_TOPIC_PREFIX", kafka_settings.topic_prefix)
    monkeypatch.setenv("SLATESTREAM_PARTITIONS", str(PARTITIONS))
    topic = create_changelog(kafka_settings)
    store = stopped_worker["store"]
    copies = {p: applied_in_copy(store, p) for p in range(PARTITIONS)}
    populations = [(p, POPULATION.format(p).encode(), wrap(copies[p], b"state")) for p in range(PARTITIONS)]
    send(kafka_settings, [record for p in range(PARTITIONS) for record in [populations[p], *filler(p, 300)]])

    as_far = DEPLOY.evaluate(stopped_worker, tmp_path / "as-far", f"prod=linear_ts:{store}")
    assert as_far.exit_code == 0, as_far.output
    checked = json.loads((tmp_path / "as-far" / "evaluation.json").read_text())["snapshots"]["prod"]["changelog"]
    assert checked["topic"] == topic and checked["behind"] == []
    assert checked["applied_offsets"]["2"]["linear_ts"]["impressions"] == copies[2][0]
    assert f"every partition's copy is as far as {topic}" in (tmp_path / "as-far" / "report.md").read_text()
    assert "warning" not in as_far.stderr
    fresh = DEPLOY.evaluate(stopped_worker, tmp_path / "fresh", f"prod=linear_ts:{store}", "--fresh-snapshots")
    assert fresh.exit_code == 0, fresh.output  # as far as the changelog: evaluated as without the flag
    assert json.loads((tmp_path / "fresh" / "evaluation.json").read_text())["snapshots"]["prod"]["changelog"] == checked

    learned_on = {0: copies[2][0] + 7, 1: copies[2][1]}  # partition 2 learned 7 more impressions elsewhere
    send(kafka_settings, [(2, POPULATION.format(2).encode(), wrap(learned_on, b"state")), *filler(2, 10)])
    behind = DEPLOY.evaluate(stopped_worker, tmp_path / "behind", f"prod=linear_ts:{store}")
    assert behind.exit_code == 0, behind.output
    checked = json.loads((tmp_path / "behind" / "evaluation.json").read_text())["snapshots"]["prod"]["changelog"]
    assert checked["behind"] == [{"partition": 2, "policy": "linear_ts", "topic": "impressions",
                                  "copy": copies[2][0], "changelog": copies[2][0] + 7}]
    line = f"partition 2 ({store}): linear_ts impressions to offset {copies[2][0]:,}, the changelog to " \
           f"{copies[2][0] + 7:,}"
    assert line in (tmp_path / "behind" / "report.md").read_text()
    assert f"warning: --snapshot BEHIND {topic} in partitions 2" in behind.stderr
    refused = DEPLOY.evaluate(stopped_worker, tmp_path / "refused", f"prod=linear_ts:{store}", "--fresh-snapshots")
    assert refused.exit_code == 1 and not (tmp_path / "refused" / "evaluation.json").exists()
    assert f"--fresh-snapshots: --snapshot BEHIND {topic} in partitions 2" in refused.stderr
    assert line in refused.stderr
