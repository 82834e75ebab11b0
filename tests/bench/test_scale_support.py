"""What the at-scale worker benchmarks read from a worker: its metrics, its assignment, its items."""

import pytest

from bench.scale_support import assigned_partitions, execution_provider, metric_value, simulator_items

METRICS = """# HELP slatestream_catalog_items Items in the catalog
# TYPE slatestream_catalog_items gauge
slatestream_catalog_items 200.0
# TYPE slatestream_items_embedded counter
slatestream_items_embedded_total 1.05e+03
slatestream_execution_provider_info{provider="CUDAExecutionProvider"} 1.0
"""


def test_metric_values_are_read_by_exact_name() -> None:
    assert metric_value(METRICS, "slatestream_catalog_items") == 200.0
    assert metric_value(METRICS, "slatestream_items_embedded_total") == 1050.0
    assert execution_provider(METRICS) == "CUDAExecutionProvider"
    assert execution_provider("") == "?"
    with pytest.raises(KeyError, match="slatestream_items_embedded"):
        metric_value(METRICS, "slatestream_items_embedded")  # the counter's sample is *_total


def test_the_last_assignment_logged_counts() -> None:
    log = "assigned partitions [0, 1, 2, 3]\n...\nassigned partitions [1, 3]\n"
    assert assigned_partitions(log) == {1, 3}
    assert assigned_partitions("assigned partitions []") == set()
    assert assigned_partitions("nothing yet") == set()


def test_simulator_items_are_real_texts_with_distinct_ids() -> None:
    items = simulator_items(50, prefix="x-")
    assert len({item.item_id for item in items}) == 50 and all(item.item_id.startswith("x-") for item in items)
    assert all(len(item.text()) > 40 for item in items)
