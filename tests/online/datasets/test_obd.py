"""Open Bandit Dataset adapter on a small fixture in obp 0.4.1's exact CSV format."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from online.datasets import (
    load_obd_arrays,
    obd_events,
    obd_items,
    obd_paths,
    read_events,
    read_obd_rows,
    write_events,
)
from online.evaluation import ips
from online.events import Click, Impression, Item, RankRequest

N_ITEMS, N_ROWS = 6, 36  # as written by conftest.write_obd


def raw_rows(log: Path) -> list[dict[str, str]]:
    with log.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_rows_follow_the_file(obd_files: tuple[Path, Path]) -> None:
    log, _ = obd_files
    raw = raw_rows(log)
    rows = list(read_obd_rows(log))
    assert len(rows) == N_ROWS
    for parsed, cells in zip(rows, raw, strict=True):
        assert parsed.label == cells[""]
        assert parsed.item == int(cells["item_id"])
        assert parsed.position == int(cells["position"]) - 1
        assert parsed.click == int(cells["click"])
        assert parsed.pscore == float(cells["propensity_score"])
        assert parsed.time == datetime.fromisoformat(cells["timestamp"]) and parsed.time.tzinfo == UTC
        assert [value for _, value in parsed.user_features] == [cells[f"user_feature_{j}"] for j in range(4)]
        assert len(parsed.affinity) == N_ITEMS
    assert {row.position for row in rows} == {0, 1, 2}


def test_events_in_log_order(obd_files: tuple[Path, Path]) -> None:
    log, items = obd_files
    rows = list(read_obd_rows(log))
    events = list(obd_events(log, items))
    catalog = [item for item in events[:N_ITEMS] if isinstance(item, Item)]
    rest = events[N_ITEMS:]
    assert len(catalog) == N_ITEMS
    assert [item.item_id for item in catalog] == [str(j) for j in range(N_ITEMS)]
    assert all(item.time == rows[0].time for item in catalog)
    assert len(rest) == 2 * N_ROWS + sum(row.click for row in rows)
    cursor = iter(rest)
    for row in rows:
        request, impression = next(cursor), next(cursor)
        assert isinstance(request, RankRequest) and isinstance(impression, Impression)
        assert request.request_id == impression.request_id == f"obd-{row.label}"
        assert request.k == 3 and request.candidates is None and request.time == row.time
        assert request.context == impression.context == row.context()
        assert request.context is not None and sorted(request.context.values()) == [1.0] * 4
        (shown,) = impression.shown
        assert (shown.item_id, shown.position, shown.propensity) == (str(row.item), row.position, row.pscore)
        if row.click:
            click = next(cursor)
            assert isinstance(click, Click)
            assert (click.item_id, click.request_id, click.reward) == (str(row.item), request.request_id, 1.0)


def test_items_carry_their_features_as_text(obd_files: tuple[Path, Path]) -> None:
    _, items = obd_files
    first = next(obd_items(items, datetime(2020, 1, 1, tzinfo=UTC)))
    assert first.fields["title"] == "item 0"
    assert "item_feature_1 " in first.text() and set(first.attributes) == {f"item_feature_{j}" for j in range(4)}


def test_synthetic_user_ids(obd_files: tuple[Path, Path]) -> None:
    log, _ = obd_files
    rows = list(read_obd_rows(log))
    by_features: dict[tuple[tuple[str, str], ...], set[str]] = {}
    for row in rows:
        by_features.setdefault(row.user_features, set()).add(row.user_id())
    assert all(len(ids) == 1 for ids in by_features.values())
    assert len({row.user_id() for row in rows}) == len(by_features) < N_ROWS
    assert len({row.user_id("row") for row in rows}) == N_ROWS
    assert [row.user_id() for row in rows] == [row.user_id() for row in read_obd_rows(log)]
    with pytest.raises(ValueError, match="user_ids"):
        rows[0].user_id("session")  # type: ignore[arg-type]


def test_arrays_match_the_events(obd_files: tuple[Path, Path]) -> None:
    log, items = obd_files
    arrays = load_obd_arrays(log, items)
    rows = list(read_obd_rows(log))
    np.testing.assert_array_equal(arrays.actions, [row.item for row in rows])
    np.testing.assert_array_equal(arrays.positions, [row.position for row in rows])
    np.testing.assert_array_equal(arrays.rewards, [row.click for row in rows])
    np.testing.assert_array_equal(arrays.pscores, [row.pscore for row in rows])
    np.testing.assert_array_equal(arrays.timestamps, [row.time.timestamp() for row in rows])
    assert arrays.context.shape == (N_ROWS, len(arrays.context_names))
    assert list(arrays.context_names) == sorted(arrays.context_names)
    for i, row in enumerate(rows):
        hot = {arrays.context_names[j] for j in np.flatnonzero(arrays.context[i])}
        assert hot == set(row.context())
    assert arrays.n_actions == N_ITEMS
    assert arrays.action_context is not None
    # item_feature_0 numeric; features 1, 2, 3 one-hot with 3, 2, 1 categories
    assert arrays.action_context.shape == (N_ITEMS, 1 + 3 + 2 + 1)
    assert arrays.action_context_names[0] == "item_feature_0"
    np.testing.assert_array_equal(arrays.action_context[:, 1:].sum(axis=1), 3.0)
    with_affinity = load_obd_arrays(log, include_affinity=True)
    assert with_affinity.action_context is None and with_affinity.n_actions == int(arrays.actions.max()) + 1
    assert with_affinity.context_names[-N_ITEMS:] == tuple(f"user-item_affinity_{j}" for j in range(N_ITEMS))
    np.testing.assert_array_equal(with_affinity.context[:, -N_ITEMS:], [[v for _, v in r.affinity] for r in rows])


def test_logging_policy_ips_on_arrays_is_the_click_rate(obd_files: tuple[Path, Path]) -> None:
    arrays = load_obd_arrays(*obd_files)
    estimate = ips(arrays.rewards, arrays.pscores, arrays.pscores, rng=np.random.default_rng(0), n_bootstrap=100)
    assert estimate.value == arrays.rewards.mean() and estimate.n == N_ROWS


def test_events_survive_the_event_log(obd_files: tuple[Path, Path], tmp_path: Path) -> None:
    events = list(obd_events(*obd_files, user_ids="row", include_affinity=True, scenario="obd-random"))
    assert write_events(tmp_path / "obd.jsonl", events) == len(events)
    assert list(read_events(tmp_path / "obd.jsonl")) == events


def test_paths_follow_the_obp_layout(tmp_path: Path) -> None:
    assert obd_paths(tmp_path, "bts", "men") == (tmp_path / "bts/men/men.csv", tmp_path / "bts/men/item_context.csv")
    with pytest.raises(ValueError, match="behavior_policy"):
        obd_paths(tmp_path, "uniform")
    with pytest.raises(ValueError, match="campaign"):
        obd_paths(tmp_path, "random", "kids")


def _rewrite(log: Path, row: int, column: str, value: str) -> None:
    raw = raw_rows(log)
    raw[row][column] = value
    with log.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(raw[0]))
        writer.writeheader()
        writer.writerows(raw)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("propensity_score", "0.0", r"all\.csv:4: propensity_score: must be in \(0, 1\]"),
        ("propensity_score", "nan", r":4: propensity_score: must be finite"),
        ("position", "0", r":4: position: must be >= 1"),
        ("click", "2", r":4: click: must be 0 or 1"),
        ("item_id", "1.5", r":4: item_id: must be an integer"),
        ("timestamp", "yesterday", r":4: timestamp: not an ISO-8601 time"),
        ("user-item_affinity_2", "x", r":4: user-item_affinity_2: not a number"),
    ],
)
def test_bad_cells_name_line_and_column(obd_files: tuple[Path, Path], column: str, value: str, message: str) -> None:
    log, _ = obd_files
    _rewrite(log, 2, column, value)  # data row 2 is line 4 of the file
    with pytest.raises(ValueError, match=message):
        list(read_obd_rows(log))


def test_missing_column_and_empty_file(tmp_path: Path, obd_files: tuple[Path, Path]) -> None:
    log, _ = obd_files
    lines = log.read_text().splitlines()
    header = lines[0].split(",")
    drop = header.index("propensity_score")
    trimmed = [",".join(c for j, c in enumerate(line.split(",")) if j != drop) for line in lines]
    broken = tmp_path / "broken.csv"
    broken.write_text("\n".join(trimmed) + "\n")
    with pytest.raises(ValueError, match="missing column 'propensity_score'"):
        list(read_obd_rows(broken))
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty file"):
        list(read_obd_rows(empty))
    header_only = tmp_path / "header.csv"
    header_only.write_text(lines[0] + "\n")
    assert list(obd_events(header_only)) == []
    with pytest.raises(ValueError, match="no rows"):
        load_obd_arrays(header_only)
