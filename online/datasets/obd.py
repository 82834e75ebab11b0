"""Open Bandit Dataset (OBD) adapter, for the CSV layout of obp 0.4.1.

Files: obd/{random,bts}/{all,men,women}/{campaign}.csv with an unnamed row-label column,
timestamp, item_id, position (1..3), click (0/1), propensity_score, user_feature_0..3
(hashed categorical strings) and user-item_affinity_<j> columns; and item_context.csv
with item_id, item_feature_0 (numeric) and item_feature_1..3 (hashed categories).

Each log row is one impression of one item at one position, an independent round (rows
are not grouped into slates). It becomes a RankRequest (k = slate_size, the catalog as
candidates), an Impression of that single item at position - 1 (0 = top) with its
propensity, and a Click when click = 1, all at the row's timestamp, in file order.

Context: OBD has no user ids. The user features become a sparse one-hot context
{"user_feature_0=<hash>": 1.0, ...} (deterministic: the key names the column and value);
affinity columns are added as numeric keys when `include_affinity`. The synthetic user
id is, by default, a hash of the user-feature combination ("features": rows with the same
features share a user, so per-user models pool them); `user_ids="row"` gives every row
its own user instead.
"""

from __future__ import annotations

import csv
import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from online.datasets.event_log import AnyEvent
from online.events import Click, Impression, Item, RankRequest, ShownItem

REQUIRED_COLUMNS = ("timestamp", "item_id", "position", "click", "propensity_score")
USER_FEATURE_PREFIX = "user_feature_"
AFFINITY_PREFIX = "user-item_affinity_"
ITEM_FEATURE_PREFIX = "item_feature_"

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def obd_paths(root: str | Path, behavior_policy: str = "random", campaign: str = "all") -> tuple[Path, Path]:
    """(log csv, item_context csv) under an obp-style `obd` folder."""
    if behavior_policy not in {"random", "bts"}:
        raise ValueError(f"behavior_policy: must be 'random' or 'bts', got {behavior_policy!r}")
    if campaign not in {"all", "men", "women"}:
        raise ValueError(f"campaign: must be 'all', 'men' or 'women', got {campaign!r}")
    folder = Path(root) / behavior_policy / campaign
    return folder / f"{campaign}.csv", folder / "item_context.csv"


@dataclass(frozen=True)
class OBDRow:
    """One parsed log row. position is 0-based; line is the 1-based line in the file."""

    label: str
    line: int
    time: datetime
    item: int
    position: int
    click: int
    pscore: float
    user_features: tuple[tuple[str, str], ...]
    affinity: tuple[tuple[str, float], ...]

    def context(self, include_affinity: bool = False) -> dict[str, float]:
        """One-hot user features (plus affinity values when asked)."""
        context = {f"{column}={value}": 1.0 for column, value in self.user_features}
        if include_affinity:
            context.update(self.affinity)
        return context

    def user_id(self, mode: Literal["features", "row"] = "features") -> str:
        """Synthetic user id: a hash of the user features, or one per row."""
        if mode == "row":
            return f"obd-row-{self.label}"
        if mode != "features":
            raise ValueError(f"user_ids: must be 'features' or 'row', got {mode!r}")
        key = "|".join(f"{column}={value}" for column, value in self.user_features)
        return "obd-u-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def _suffix_order(column: str) -> tuple[int, str]:
    tail = column.rsplit("_", 1)[-1]
    return (int(tail), column) if tail.isdigit() else (1 << 30, column)


def _number(path: Path, line: int, column: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{path}:{line}: {column}: not a number: {raw!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{path}:{line}: {column}: must be finite, got {raw!r}")
    return value


def _numbers(path: Path, line: int, columns: list[str], raws: list[str]) -> tuple[float, ...]:
    try:
        values = tuple(map(float, raws))
    except ValueError:
        values = ()
    if len(values) != len(raws) or not all(map(math.isfinite, values)):
        return tuple(_number(path, line, column, raw) for column, raw in zip(columns, raws, strict=True))
    return values


def _integer(path: Path, line: int, column: str, raw: str) -> int:
    value = _number(path, line, column, raw)
    if not value.is_integer():
        raise ValueError(f"{path}:{line}: {column}: must be an integer, got {raw!r}")
    return int(value)


def _parse_time(path: Path, line: int, raw: str) -> datetime:
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"{path}:{line}: timestamp: not an ISO-8601 time: {raw!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def read_obd_rows(log_csv: str | Path) -> Iterator[OBDRow]:
    """Parsed rows of an OBD log CSV, in file order; ValueError "path:line: column: reason"."""
    path = Path(log_csv)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: empty file (no header)")
        index = {name: position for position, name in enumerate(header)}
        for column in REQUIRED_COLUMNS:
            if column not in index:
                raise ValueError(f"{path}: missing column {column!r}")
        users = sorted((c for c in header if c.startswith(USER_FEATURE_PREFIX)), key=_suffix_order)
        affinities = sorted((c for c in header if c.startswith(AFFINITY_PREFIX)), key=_suffix_order)
        if not users:
            raise ValueError(f"{path}: missing columns {USER_FEATURE_PREFIX}0..")
        label_column = index.get("")
        affinity_at = [index[c] for c in affinities]
        for number, cells in enumerate(reader):
            line = reader.line_num
            if len(cells) != len(header):
                raise ValueError(f"{path}:{line}: <row>: expected {len(header)} cells, got {len(cells)}")
            item = _integer(path, line, "item_id", cells[index["item_id"]])
            position = _integer(path, line, "position", cells[index["position"]])
            click = _integer(path, line, "click", cells[index["click"]])
            pscore = _number(path, line, "propensity_score", cells[index["propensity_score"]])
            if item < 0:
                raise ValueError(f"{path}:{line}: item_id: must be >= 0, got {item}")
            if position < 1:
                raise ValueError(f"{path}:{line}: position: must be >= 1 (OBD counts from 1), got {position}")
            if click not in (0, 1):
                raise ValueError(f"{path}:{line}: click: must be 0 or 1, got {click}")
            if not 0.0 < pscore <= 1.0:
                raise ValueError(f"{path}:{line}: propensity_score: must be in (0, 1], got {pscore}")
            yield OBDRow(
                label=cells[label_column] if label_column is not None and cells[label_column] else str(number),
                line=line,
                time=_parse_time(path, line, cells[index["timestamp"]]),
                item=item,
                position=position - 1,
                click=click,
                pscore=pscore,
                user_features=tuple((c, cells[index[c]]) for c in users),
                affinity=tuple(zip(affinities, _numbers(path, line, affinities, [cells[j] for j in affinity_at]),
                                   strict=True)),
            )


def _read_item_table(item_context_csv: str | Path) -> tuple[list[str], list[list[str]]]:
    path = Path(item_context_csv)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or "item_id" not in header:
            raise ValueError(f"{path}: missing column 'item_id'")
        features = sorted((c for c in header if c.startswith(ITEM_FEATURE_PREFIX)), key=_suffix_order)
        columns = ["item_id", *features]
        rows = []
        for cells in reader:
            if len(cells) != len(header):
                raise ValueError(f"{path}:{reader.line_num}: <row>: expected {len(header)} cells, got {len(cells)}")
            rows.append([cells[header.index(c)] for c in columns])
    return columns, rows


def obd_items(item_context_csv: str | Path, time: datetime) -> Iterator[Item]:
    """Item events from item_context.csv: id str(item_id); fields "title" ("item <id>") and
    "features" ("item_feature_0 -0.49; item_feature_1 aed79..."), attributes = the raw features."""
    columns, rows = _read_item_table(item_context_csv)
    for row in rows:
        features = dict(zip(columns[1:], row[1:], strict=True))
        text = "; ".join(f"{column} {value}" for column, value in features.items())
        fields = {"title": f"item {row[0]}"} | ({"features": text} if text else {})
        yield Item(item_id=row[0], fields=fields, attributes=features, time=time)


def obd_events(
    log_csv: str | Path,
    item_context_csv: str | Path | None = None,
    *,
    scenario: str = "obd",
    user_ids: Literal["features", "row"] = "features",
    slate_size: int = 3,
    include_affinity: bool = False,
    id_prefix: str = "obd",
) -> Iterator[AnyEvent]:
    """Items first (timed at the first row), then per row: RankRequest, Impression, Click
    (when clicked). Request ids are f"{id_prefix}-{row label}"; event ids add "-imp" and
    "-click"."""
    rows = read_obd_rows(log_csv)
    first = next(rows, None)
    if first is None:
        return
    if item_context_csv is not None:
        yield from obd_items(item_context_csv, first.time)
    for row in chain([first], rows):
        request_id = f"{id_prefix}-{row.label}"
        user = row.user_id(user_ids)
        context = row.context(include_affinity)
        yield RankRequest(
            request_id=request_id, user_id=user, scenario=scenario, context=context, k=slate_size, time=row.time
        )
        shown = ShownItem(item_id=str(row.item), position=row.position, propensity=row.pscore)
        yield Impression(
            event_id=f"{request_id}-imp", request_id=request_id, user_id=user, scenario=scenario,
            shown=(shown,), context=context, time=row.time,
        )
        if row.click:
            yield Click(
                event_id=f"{request_id}-click", request_id=request_id, user_id=user,
                item_id=str(row.item), scenario=scenario, time=row.time,
            )


@dataclass(frozen=True)
class OBDArrays:
    """Columnar OBD log for the estimators (n rows, in file order).

    actions int64[n] (item ids), positions int64[n] (0 = top), rewards float64[n]
    (clicks), pscores float64[n], timestamps float64[n] (POSIX seconds, UTC), context
    float64[n, d] (one-hot user features, then affinities when asked) named by
    context_names (d), n_actions, and action_context float64[n_actions, f] named by
    action_context_names (numeric features as is, categorical ones one-hot), or None
    without an item_context file.
    """

    actions: IntArray
    positions: IntArray
    rewards: FloatArray
    pscores: FloatArray
    timestamps: FloatArray
    context: FloatArray
    context_names: tuple[str, ...]
    n_actions: int
    action_context: FloatArray | None
    action_context_names: tuple[str, ...]


def _action_context(item_context_csv: str | Path) -> tuple[FloatArray, tuple[str, ...]]:
    columns, rows = _read_item_table(item_context_csv)
    ids = [int(row[0]) for row in rows]
    if sorted(ids) != list(range(len(ids))):
        raise ValueError(f"{item_context_csv}: item_id: must be 0..{len(ids) - 1} (each once)")
    order = np.argsort(ids)
    blocks: list[FloatArray] = []
    names: list[str] = []
    for j, column in enumerate(columns[1:], start=1):
        values = [row[j] for row in rows]
        try:
            blocks.append(np.array([float(v) for v in values])[order, None])
            names.append(column)
        except ValueError:
            categories = sorted(set(values))
            onehot = np.array([[float(v == c) for c in categories] for v in values])
            blocks.append(onehot[order])
            names.extend(f"{column}={c}" for c in categories)
    matrix = np.hstack(blocks) if blocks else np.zeros((len(ids), 0))
    return matrix, tuple(names)


def load_obd_arrays(
    log_csv: str | Path, item_context_csv: str | Path | None = None, *, include_affinity: bool = False
) -> OBDArrays:
    """Read an OBD log (and item context) into `OBDArrays`. Context columns are the
    one-hot keys of `OBDRow.context`, sorted, so they match the events' context dicts."""
    rows = list(read_obd_rows(log_csv))
    if not rows:
        raise ValueError(f"{log_csv}: no rows")
    contexts = [row.context(include_affinity) for row in rows]
    onehot = sorted({key for context in contexts for key in context if "=" in key})
    names = tuple(onehot) + tuple(column for column, _ in rows[0].affinity if include_affinity)
    column_of = {name: j for j, name in enumerate(names)}
    matrix = np.zeros((len(rows), len(names)))
    for i, context in enumerate(contexts):
        for key, value in context.items():
            matrix[i, column_of[key]] = value
    actions = np.array([row.item for row in rows], dtype=np.int64)
    action_context, action_names = (None, ()) if item_context_csv is None else _action_context(item_context_csv)
    n_actions = int(actions.max()) + 1 if action_context is None else action_context.shape[0]
    if actions.max() >= n_actions:
        raise ValueError(f"{log_csv}: item_id: {int(actions.max())} is not in the item context (0..{n_actions - 1})")
    return OBDArrays(
        actions=actions,
        positions=np.array([row.position for row in rows], dtype=np.int64),
        rewards=np.array([row.click for row in rows], dtype=np.float64),
        pscores=np.array([row.pscore for row in rows], dtype=np.float64),
        timestamps=np.array([row.time.timestamp() for row in rows], dtype=np.float64),
        context=matrix,
        context_names=names,
        n_actions=n_actions,
        action_context=action_context,
        action_context_names=action_names,
    )
