"""The worker creates Faust's internal topics itself, with the names and layout Faust uses."""

import numpy as np

from online.config import SlatestreamConfig
from online.events import Item
from streams.settings import StreamSettings
from streams.worker.config import WorkerConfig
from streams.worker.run import build_worker, internal_topic_specs


def test_internal_topic_specs_name_every_topic_faust_declares_with_its_layout(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = StreamSettings(broker_url="kafka://127.0.0.1:1", topic_prefix="t.", app_id="a", store_dir=tmp_path,
                              partitions=6)

    def embed(items: list[Item]) -> np.ndarray:
        return np.zeros((len(items), 8), dtype=np.float32)

    app = build_worker(settings, SlatestreamConfig(embedding={"dim": 8}), WorkerConfig(), embed).app
    specs = internal_topic_specs(settings)
    changelogs = {table.changelog_topic.get_topic_name(): table for table in app.tables.values()}
    leader = app._leader_assignor._leader_topic_name
    assert set(specs) == {*changelogs, leader}
    for name, table in changelogs.items():
        assert specs[name]["num_partitions"] == table.partitions == 6
        assert specs[name]["configs"] == {"cleanup.policy": "compact"}
    assert specs[leader]["num_partitions"] == 1


def test_the_built_worker_takes_whole_partition_shares_for_feedback_and_whole_chunks_for_requests(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = StreamSettings(broker_url="kafka://127.0.0.1:1", topic_prefix="t.", app_id="a", store_dir=tmp_path,
                              partitions=2)

    def embed(items: list[Item]) -> np.ndarray:
        return np.zeros((len(items), 8), dtype=np.float32)

    config = WorkerConfig(batch_size=3_000, request_batch_size=50)
    topology = build_worker(settings, SlatestreamConfig(embedding={"dim": 8}), config, embed)
    feedback, requests = topology.feedback_lane, topology.request_lane
    assert feedback.whole_shares and not requests.whole_shares  # a partition's impressions and clicks flush together
    assert (feedback.max_batch, requests.max_batch) == (3_000, 50)
    assert set(feedback.topics) == {"t.impressions", "t.clicks", "t.control"}
    assert set(requests.topics) == {"t.requests"}
    assert topology.app.record_kinds == {"t.impressions": "impressions", "t.clicks": "clicks", "t.control": "control"}
