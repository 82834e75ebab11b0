"""The item catalog the ranker scores: ids, bandit feature vectors and attributes.

Rows are append-only: an item keeps its row for life (updates overwrite the vector,
deactivation clears the `active` flag), so row indices are stable keys for arrays.

Optionally (`diversity_dim`) each item also carries a second, unit-length embedding used
only to measure similarity between items for diversity (MMR / DPP re-ranking and
intra-list diversity): e.g. the raw sentence embedding, where the bandit vector is its
centred PCA projection. Without it the bandit vectors serve for both.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import repeat
from operator import itemgetter
from typing import overload

import numpy as np
import numpy.typing as npt

from online.events import Item


@dataclass
class Catalog:
    """Items and their d-dimensional bandit vectors (float32[n, d], unit L2 norm), and
    optionally e-dimensional diversity embeddings (float32[n, e], e = diversity_dim,
    stored L2-normalised; None: the bandit vectors serve for diversity)."""

    dim: int
    diversity_dim: int | None = None
    ids: list[str] = field(default_factory=list)
    providers: list[str | None] = field(default_factory=list)
    attributes: list[dict[str, str]] = field(default_factory=list)
    first_seen: list[datetime] = field(default_factory=list)
    _index: dict[str, int] = field(default_factory=dict)
    _vectors: npt.NDArray[np.float32] = field(
        default_factory=lambda: np.zeros((0, 0), dtype=np.float32)
    )
    _diversity: npt.NDArray[np.float32] = field(
        default_factory=lambda: np.zeros((0, 0), dtype=np.float32)
    )
    _active: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))
    _changed: set[int] = field(default_factory=set)
    revision: int = 0
    """Counts upserts: what is derived from the rows (filter masks, group codes) is cached by it."""

    def __post_init__(self) -> None:
        if self.diversity_dim is not None and self.diversity_dim < 1:
            raise ValueError(f"diversity_dim: must be >= 1 or None, got {self.diversity_dim}")
        if self._vectors.shape[1] != self.dim:
            self._vectors = np.zeros((0, self.dim), dtype=np.float32)
        if self._diversity.shape != (self._vectors.shape[0], self.diversity_dim or 0):
            self._diversity = np.zeros((self._vectors.shape[0], self.diversity_dim or 0), dtype=np.float32)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._index

    @property
    def vectors(self) -> npt.NDArray[np.float32]:
        """float32[n, d]: row r is the vector of ids[r]."""
        return self._vectors[: len(self.ids)]

    @property
    def diversity_vectors(self) -> npt.NDArray[np.float32]:
        """float32[n, e]: the unit embeddings diversity is measured on (row r: ids[r]); the
        bandit vectors float32[n, d] themselves when the catalog has no diversity_dim."""
        if self.diversity_dim is None:
            return self.vectors
        return self._diversity[: len(self.ids)]

    @property
    def active(self) -> npt.NDArray[np.bool_]:
        """bool[n]: rows that may be ranked."""
        return self._active[: len(self.ids)]

    def upsert(
        self,
        items: Sequence[Item],
        vectors: npt.NDArray[np.float32],
        diversity_vectors: npt.NDArray[np.floating] | None = None,
    ) -> None:
        """Add or update items; vectors is float32[len(items), d] in the same order.

        diversity_vectors: float[len(items), e] (any non-zero norm; stored unit-length as
        float32), required when the catalog has a diversity_dim e, refused when it has none.
        """
        if vectors.shape != (len(items), self.dim):
            raise ValueError(f"vectors: expected shape {(len(items), self.dim)}, got {vectors.shape}")
        unit = self._unit_diversity(diversity_vectors, len(items))
        for index, (item, vector) in enumerate(zip(items, vectors, strict=True)):
            row = self._index.get(item.item_id)
            if row is None:
                row = self._append(item)
            else:
                self.providers[row] = item.provider
                self.attributes[row] = dict(item.attributes)
            self._vectors[row] = vector
            if unit is not None:
                self._diversity[row] = unit[index]
            self._active[row] = item.active
            self._changed.add(row)
        self.revision += 1

    def _unit_diversity(
        self, diversity_vectors: npt.NDArray[np.floating] | None, count: int
    ) -> npt.NDArray[np.float32] | None:
        """float32[count, e] unit rows of diversity_vectors, checked against diversity_dim."""
        if self.diversity_dim is None:
            if diversity_vectors is not None:
                raise ValueError("diversity_vectors: this catalog has no diversity_dim (create it with one)")
            return None
        if diversity_vectors is None:
            raise ValueError(f"diversity_vectors: required, float[{count}, {self.diversity_dim}] (diversity_dim set)")
        matrix = np.asarray(diversity_vectors, dtype=np.float64)
        if matrix.shape != (count, self.diversity_dim):
            raise ValueError(
                f"diversity_vectors: expected shape {(count, self.diversity_dim)}, got {matrix.shape}"
            )
        norms = np.linalg.norm(matrix, axis=1)
        bad = ~np.isfinite(norms) | (norms == 0)
        if bad.any():
            raise ValueError(f"diversity_vectors: row {int(np.argmax(bad))} has zero or non-finite norm")
        unit: npt.NDArray[np.float32] = (matrix / norms[:, None]).astype(np.float32)
        return unit

    def _append(self, item: Item) -> int:
        row = len(self.ids)
        if row == self._vectors.shape[0]:
            capacity = max(64, 2 * row)
            grown = np.zeros((capacity, self.dim), dtype=np.float32)
            grown[:row] = self._vectors[:row]
            diversity = np.zeros((capacity, self.diversity_dim or 0), dtype=np.float32)
            diversity[:row] = self._diversity[:row]
            active = np.zeros(capacity, dtype=bool)
            active[:row] = self._active[:row]
            self._vectors, self._diversity, self._active = grown, diversity, active
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
            return _known_rows(self._index, item_ids)
        except KeyError as error:
            raise KeyError(f"unknown item id {error.args[0]!r}") from None

    def row_of(self, item_id: str) -> int | None:
        """The row of one item, or None when unknown."""
        return self._index.get(item_id)

    def active_rows(self, item_ids: Sequence[str]) -> npt.NDArray[np.int64]:
        """Rows of the ids that are known and active, in the given order (others dropped)."""
        try:
            rows = _known_rows(self._index, item_ids)
        except KeyError:
            rows = np.fromiter(map(self._index.get, item_ids, repeat(-1)), dtype=np.int64, count=len(item_ids))
            rows = rows[rows >= 0]
        return rows[self._active[rows]]

    def ids_of(self, rows: npt.NDArray[np.int64]) -> list[str]:
        """Item ids of catalog rows."""
        ids = self.ids
        return [ids[row] for row in rows.tolist()]

    def id_view(self, rows: npt.NDArray[np.int64]) -> RowIds:
        """The item ids of catalog rows as a lazy sequence: an id is looked up when read (a
        ranking reads the k served ids of n candidates; rows are stable, so it stays valid)."""
        return RowIds(self.ids, rows)

    def known(self, item_ids: Sequence[str]) -> list[str]:
        """The subset of item_ids present and active, order kept."""
        active = self.active
        return [i for i in item_ids if (r := self._index.get(i)) is not None and active[r]]


def _known_rows(index: dict[str, int], item_ids: Sequence[str]) -> npt.NDArray[np.int64]:
    """int64[len(item_ids)] rows of ids that are all known (KeyError otherwise), looked up in
    one C-level call (itemgetter: ~1.5x faster than a generator over 1,000 ids) and read by
    fromiter (~1.3x faster than np.array's dtype discovery over the tuple)."""
    if len(item_ids) < 2:
        return np.array([index[i] for i in item_ids], dtype=np.int64)
    return np.fromiter(itemgetter(*item_ids)(index), dtype=np.int64, count=len(item_ids))


class RowIds(Sequence[str]):
    """Read-only sequence of the ids of some catalog rows (see Catalog.id_view)."""

    __slots__ = ("_ids", "_rows")

    def __init__(self, ids: list[str], rows: npt.NDArray[np.int64]) -> None:
        self._ids = ids
        self._rows = rows

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [self._ids[row] for row in self._rows[index].tolist()]
        return self._ids[int(self._rows[index])]

    def __iter__(self) -> Iterator[str]:
        return map(self._ids.__getitem__, self._rows.tolist())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RowIds({list(self)!r})"
