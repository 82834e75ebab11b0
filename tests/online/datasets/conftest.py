"""Small dataset fixtures written by the tests, in the exact file formats of the sources.

OBD: obp 0.4.1's obd/{policy}/{campaign}/{campaign}.csv (unnamed row-label column,
timestamp, item_id, position 1..3, click, propensity_score, user_feature_0..3 as hashed
strings, user-item_affinity_<item>) and item_context.csv. MIND: behaviors.tsv and news.tsv.
"""

from __future__ import annotations

import csv
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

OBD_ITEMS = 6
OBD_ROWS = 36


def hashed(text: str) -> str:
    """A 32-hex-digit token like OBD's hashed categorical values."""
    return hashlib.md5(text.encode()).hexdigest()


def write_obd(root: Path, n_rows: int = OBD_ROWS, n_items: int = OBD_ITEMS, seed: int = 0) -> tuple[Path, Path]:
    """Write random/all/all.csv and item_context.csv under root; return their paths."""
    generator = np.random.default_rng(seed)
    folder = root / "random" / "all"
    folder.mkdir(parents=True)
    log, items = folder / "all.csv", folder / "item_context.csv"
    header = ["", "timestamp", "item_id", "position", "click", "propensity_score"]
    header += [f"user_feature_{j}" for j in range(4)] + [f"user-item_affinity_{j}" for j in range(n_items)]
    start = datetime(2019, 11, 24, 0, 0, 34, 762830, tzinfo=UTC)
    with log.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in range(n_rows):
            time = start + timedelta(seconds=float(37 * row + generator.integers(0, 30)), microseconds=row)
            users = [hashed(f"uf{j}-{generator.integers(0, 2 + j)}") for j in range(4)]
            affinity = [f"{float(generator.integers(0, 2))}" for _ in range(n_items)]
            writer.writerow([
                row, str(time), generator.integers(0, n_items), generator.integers(1, 4),
                int(generator.random() < 0.3), 1 / n_items, *users, *affinity,
            ])
    with items.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["", "item_id", "item_feature_0", "item_feature_1", "item_feature_2", "item_feature_3"])
        for item in range(n_items):
            writer.writerow([
                item, item, generator.normal(), hashed(f"if1-{item % 3}"), hashed(f"if2-{item % 2}"), hashed("if3"),
            ])
    return log, items


@pytest.fixture
def obd_files(tmp_path: Path) -> tuple[Path, Path]:
    """(log csv, item_context csv) of a 36-row, 6-item OBD-format fixture."""
    return write_obd(tmp_path / "obd")


BEHAVIORS = [
    ["1", "U100", "11/11/2019 9:05:03 AM", "N1 N2", "N10-1 N11-0 N12-0"],
    ["2", "U200", "11/11/2019 12:30:00 PM", "", "N11-0 N12-1 N10-1"],
    ["3", "U100", "11/11/2019 8:01:59 AM", "N1", "N12-0 N12-1 N11-0"],
    ["4", "U300", "11/12/2019 1:00:00 AM", "N3", "N10-0"],
]

NEWS = [
    ["N10", "sports", "football", "Late winner", "A goal in the last minute.", "https://example.com/10",
     '[{"Label": "Goal"}]', "[]"],
    ["N11", "news", "world", "Summit ends", "", "", "[]", "[]"],
    ["N12", "lifestyle", "food", "A recipe with \"quotes\"", "Bake it.", "https://example.com/12", "[]", "[]"],
]


@pytest.fixture
def mind_files(tmp_path: Path) -> tuple[Path, Path]:
    """(behaviors.tsv, news.tsv) of a 4-impression, 3-news MIND-format fixture."""
    behaviors, news = tmp_path / "behaviors.tsv", tmp_path / "news.tsv"
    behaviors.write_text("".join("\t".join(cells) + "\n" for cells in BEHAVIORS), encoding="utf-8")
    news.write_text("".join("\t".join(cells) + "\n" for cells in NEWS), encoding="utf-8")
    return behaviors, news
