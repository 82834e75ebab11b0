"""Business filters over a request's candidate rows (deterministic, applied before any draw).

Because filtering depends only on the request, the catalog and the memory (never on the
random draws), every Monte Carlo draw sees the same filtered candidates and propensities
stay those of the full procedure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from online.catalog import Catalog
from online.objectives.memory import UserMemory
from online.objectives.settings import FilterSettings

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class FilterResult:
    """rows: int64[r] the candidate rows kept, order kept; removed: filter name -> rows it
    removed (each row is charged to the first filter that removed it)."""

    rows: IntArray
    removed: dict[str, int]

    def describe(self) -> str:
        """E.g. "blocklist removed 3, shown_within removed 7"."""
        parts = [f"{name} removed {count}" for name, count in self.removed.items() if count]
        return ", ".join(parts) or "nothing removed"


def filter_candidates(
    rows: IntArray, catalog: Catalog, filters: FilterSettings, user: UserMemory | None, time_s: float
) -> FilterResult:
    """Apply `filters` to candidate catalog rows int64[n] for a request at time_s (event
    time, seconds since the epoch) by a user with the given recent items (None = none)."""
    removed: dict[str, int] = {}
    if not filters.active:
        return FilterResult(rows, removed)

    def drop(name: str, mask: npt.NDArray[np.bool_]) -> None:
        nonlocal rows
        removed[name] = int(mask.sum())
        rows = rows[~mask]

    if filters.blocklist:
        index = catalog.index
        blocked = np.fromiter((index[i] for i in filters.blocklist if i in index), dtype=np.int64)
        drop("blocklist", np.isin(rows, blocked))
    if filters.required_attributes:
        allowed = filters.allowed_values()
        attributes = catalog.attributes
        mismatch = np.fromiter(
            (any(attributes[row].get(name) not in values for name, values in allowed.items())
             for row in rows.tolist()),
            dtype=bool, count=len(rows),
        )
        drop("required_attributes", mismatch)
    if filters.exclude_shown_within_s is not None and user is not None:
        drop("shown_within", np.isin(rows, user.shown.since(time_s - filters.exclude_shown_within_s)))
    if filters.exclude_clicked_within_s is not None and user is not None:
        drop("clicked_within", np.isin(rows, user.clicked.since(time_s - filters.exclude_clicked_within_s)))
    return FilterResult(rows, removed)
