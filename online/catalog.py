"""The item catalog the ranker scores: ids, bandit feature vectors and attributes.

Rows are append-only: an item keeps its row for life (updates overwrite the vector,
deactivation clears the `active` flag), so row indices are stable keys for arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import repeat

import numpy as np
import numpy.typing as npt

from online.events import Item


@dataclass
class Catalog:
    """Items and their d-dimensional bandit vectors (float32[n, d], unit L2 norm)."""

    dim: int
    ids: list[str] = field(default_factory=list)
    providers: list[str | None] = field(default_factory=list)
    attributes: list[dict[str, str]] = field(default_factory=list)
    first_seen: list[datetime] = field(default_factory=list)
    _index: dict[str, int] = field(default_factory=dict)
    _vectors: npt.NDArray[np.float32] = field(
        default_factory=lambda: np.zeros((0, 0), dtype=np.float32)
    )
    _active: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))
    _changed: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self._vectors.shape[1] != self.dim:
            self._vectors = np.zeros((0, self.dim), dtype=np.float32)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._index

    @property
    def vectors(self) -> npt.NDArray[np.float32]:
        """float32[n, d]: row r is the vector of ids[r]."""
        return self._vectors[: len(self.ids)]

    @property
    def active(self) -> npt.NDArray[np.bool_]:
        """bool[n]: rows that may be ranked."""
        return self._active[: len(self.ids)]

    def upsert(self, items: Sequence[Item], vectors: npt.NDArray[np.float32]) -> None:
        """Add or update items; vectors is float32[len(items), d] in the same order."""
        if vectors.shape != (len(items), self.dim):
            raise ValueError(f"vectors: expected shape {(len(items), self.dim)}, got {vectors.shape}")
        for item, vector in zip(items, vectors, strict=True):
            row = self._index.get(item.item_id)
            if row is None:
                row = self._append(item)
            else:
                self.providers[row] = item.provider
                self.attributes[row] = dict(item.attributes)
            self._vectors[row] = vector
            self._active[row] = item.active
            self._changed.add(row)

    def _append(self, item: Item) -> int:
        row = len(self.ids)
        if row == self._vectors.shape[0]:
            capacity = max(64, 2 * row)
            grown = np.zeros((capacity, self.dim), dtype=np.float32)
            grown[:row] = self._vectors[:row]
            active = np.zeros(capacity, dtype=bool)
            active[:row] = self._active[:row]
            self._vectors, self._active = grown, active
        self.ids.append(item.item_id)
        self.providers.append(item.provider)
        self.attributes.append(dict(item.attributes))
        self.first_seen.append(item.time)
        self._index[item.item_id] = row
        return row

    def take_changes(self) -> npt.NDArray[np.int64]:
        """Rows added or updated since the last call, sorted (for mirrors such as a GPU index)."""
        rows = np.fromiter(sorted(self._changed), dtype=np.int64, count=len(self._changed))
        self._changed.clear()
        return rows

    @property
    def index(self) -> dict[str, int]:
        """item id -> row (read-only view by convention)."""
        return self._index

    def rows(self, item_ids: Sequence[str]) -> npt.NDArray[np.int64]:
        """Catalog rows of item_ids; raises KeyError naming the first unknown id."""
        try:
            return np.fromiter((self._index[i] for i in item_ids), dtype=np.int64, count=len(item_ids))
        except KeyError as error:
            raise KeyError(f"unknown item id {error.args[0]!r}") from None

    def row_of(self, item_id: str) -> int | None:
        """The row of one item, or None when unknown."""
        return self._index.get(item_id)

    def active_rows(self, item_ids: Sequence[str]) -> npt.NDArray[np.int64]:
        """Rows of the ids that are known and active, in the given order (others dropped)."""
        rows = np.fromiter(map(self._index.get, item_ids, repeat(-1)), dtype=np.int64, count=len(item_ids))
        rows = rows[rows >= 0]
        return rows[self._active[rows]]

    def ids_of(self, rows: npt.NDArray[np.int64]) -> list[str]:
        """Item ids of catalog rows."""
        ids = self.ids
        return [ids[row] for row in rows.tolist()]

    def known(self, item_ids: Sequence[str]) -> list[str]:
        """The subset of item_ids present and active, order kept."""
        active = self.active
        return [i for i in item_ids if (r := self._index.get(i)) is not None and active[r]]
