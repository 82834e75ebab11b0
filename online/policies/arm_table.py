"""Per-item exposure and reward totals as a persistent table: updates cost what they change.

`ArmStats` values are immutable to their users, yet a new version shares the arrays of the
version it came from (online.policies.versioned): the newest version holds the live table
(item ids, an id -> row index, float64 totals with spare capacity), older ones the undo
records of the changes since, so `add` costs O(items changed) however many arms there are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from online.policies.base import FloatArray, IntArray
from online.policies.versioned import Version, Versioned


class _Table:
    """The live arms: ids[:n], index id -> row, totals float64[capacity] (rows < n used)."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.index: dict[str, int] = {}
        self.exposures = np.zeros(16)
        self.rewards = np.zeros(16)

    @property
    def n(self) -> int:
        return len(self.ids)

    def reserve(self, n: int) -> None:
        """Room for n arms (doubling, so appends cost O(1) amortised)."""
        if n > len(self.exposures):
            capacity = max(n, 2 * len(self.exposures))
            for name in ("exposures", "rewards"):
                old = getattr(self, name)
                grown = np.zeros(capacity)
                grown[: len(old)] = old
                setattr(self, name, grown)


@dataclass
class _Undo:
    """How to turn the table of the version one step closer to the live table into this
    version's: keep `n` arms (appending `extra_ids` when that grows them), then set the
    totals of `rows` (all < n) to `exposures` and `rewards`."""

    n: int
    extra_ids: list[str]
    rows: IntArray
    exposures: FloatArray
    rewards: FloatArray

    def apply(self, table: _Table) -> _Undo:
        """Apply to `table` (holding the other version); returns the record that undoes it."""
        before = table.n
        kept = min(self.n, before)
        rows = np.union1d(self.rows[self.rows < kept], np.arange(self.n, before, dtype=np.int64))
        redo = _Undo(before, table.ids[self.n :] if self.n < before else [], rows,
                     table.exposures[rows].copy(), table.rewards[rows].copy())
        for item_id in table.ids[self.n :]:
            del table.index[item_id]
        del table.ids[self.n :]
        table.reserve(self.n)
        for item_id in self.extra_ids:
            table.index[item_id] = len(table.ids)
            table.ids.append(item_id)
        table.exposures[self.rows] = self.exposures
        table.rewards[self.rows] = self.rewards
        return redo


class ArmStats(Versioned[_Table]):
    """Per arm (item id): total exposures and rewards, float64. Arms are added on first sight
    and kept. Immutable: `add` returns a new version sharing this one's arrays (module doc)."""

    __slots__ = ("_changed",)

    def __init__(self, ids: Sequence[str] = (), exposures: FloatArray | None = None,
                 rewards: FloatArray | None = None) -> None:
        table = _Table()
        if len(ids):
            table.ids = list(ids)
            table.index = {item_id: row for row, item_id in enumerate(table.ids)}
            if len(table.index) != len(table.ids):
                raise ValueError("arm ids repeat")
            table.reserve(len(ids))
            table.exposures[: len(ids)] = np.zeros(len(ids)) if exposures is None else exposures
            table.rewards[: len(ids)] = np.zeros(len(ids)) if rewards is None else rewards
        self._version = Version(table)
        self._changed: IntArray = np.arange(len(ids), dtype=np.int64)

    def __len__(self) -> int:
        return self._version.read().n

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._version.read().ids)

    @property
    def exposures(self) -> FloatArray:
        """float64[n] a copy of the totals, in `ids` order."""
        table = self._version.read()
        return table.exposures[: table.n].copy()

    @property
    def rewards(self) -> FloatArray:
        table = self._version.read()
        return table.rewards[: table.n].copy()

    def lookup(self, item_ids: Sequence[str]) -> tuple[FloatArray, FloatArray]:
        """(exposures, rewards) float64[len(item_ids)]; zeros for unseen arms."""
        table = self._version.read()
        index = table.index
        rows = np.fromiter((index.get(i, -1) for i in item_ids), dtype=np.int64, count=len(item_ids))
        seen = rows >= 0
        exposures, rewards = np.zeros(len(item_ids)), np.zeros(len(item_ids))
        exposures[seen] = table.exposures[rows[seen]]
        rewards[seen] = table.rewards[rows[seen]]
        return exposures, rewards

    def add(self, item_ids: Sequence[str], exposures: FloatArray, rewards: FloatArray) -> ArmStats:
        """A new version with the per-row increments folded in (arms created as needed);
        costs O(len(item_ids)), whatever the number of arms."""
        changed: list[IntArray] = []

        def fold(table: _Table) -> _Undo:
            before = table.n
            index = table.index
            rows = np.fromiter((index.get(i, -1) for i in item_ids), dtype=np.int64, count=len(item_ids))
            for position in np.flatnonzero(rows < 0).tolist():
                row = index.get(item_ids[position])
                if row is None:
                    row = index[item_ids[position]] = len(table.ids)
                    table.ids.append(item_ids[position])
                rows[position] = row
            table.reserve(table.n)
            touched = np.unique(rows)
            old = touched[touched < before]
            undo = _Undo(before, [], old, table.exposures[old].copy(), table.rewards[old].copy())
            table.exposures[before : table.n] = 0.0
            table.rewards[before : table.n] = 0.0
            np.add.at(table.exposures, rows, exposures)
            np.add.at(table.rewards, rows, rewards)
            changed.append(touched)
            return undo

        new = ArmStats.__new__(ArmStats)
        new._version = self._version.derive(fold)
        new._changed = changed[0]
        return new

    def changed(self) -> tuple[list[str], FloatArray, FloatArray]:
        """(ids, exposures, rewards) of the arms `add` changed making this version (every
        arm for a version built from scratch)."""
        table = self._version.read()
        rows = self._changed
        return [table.ids[row] for row in rows.tolist()], table.exposures[rows], table.rewards[rows]

    def __repr__(self) -> str:
        return f"ArmStats({len(self)} arms)"
