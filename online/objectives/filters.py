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
        drop("blocklist", blocked(rows, catalog, filters))
    if filters.required_attributes:
        drop("required_attributes", mismatched(rows, catalog, filters))
    for name, recent in user_exclusions(filters, user, time_s):
        drop(name, np.isin(rows, recent))
    return FilterResult(rows, removed)


def blocked(rows: IntArray, catalog: Catalog, filters: FilterSettings) -> npt.NDArray[np.bool_]:
    """bool[n]: which of the catalog rows int64[n] are on the blocklist."""
    index = catalog.index
    listed = np.fromiter((index[i] for i in filters.blocklist if i in index), dtype=np.int64)
    return np.isin(rows, listed)


def mismatched(rows: IntArray, catalog: Catalog, filters: FilterSettings) -> npt.NDArray[np.bool_]:
    """bool[n]: which of the catalog rows int64[n] lack a required attribute value."""
    allowed = filters.allowed_values()
    attributes = catalog.attributes
    return np.fromiter(
        (any(attributes[row].get(name) not in values for name, values in allowed.items()) for row in rows.tolist()),
        dtype=bool, count=len(rows),
    )


def user_exclusions(filters: FilterSettings, user: UserMemory | None,
                    time_s: float) -> list[tuple[str, IntArray]]:
    """(filter name, int64[r] rows) the user's recent items exclude at time_s (seconds)."""
    if user is None:
        return []
    excluded = []
    if filters.exclude_shown_within_s is not None:
        excluded.append(("shown_within", user.shown.since(time_s - filters.exclude_shown_within_s)))
    if filters.exclude_clicked_within_s is not None:
        excluded.append(("clicked_within", user.clicked.since(time_s - filters.exclude_clicked_within_s)))
    return excluded


def catalog_mask(catalog: Catalog, filters: FilterSettings) -> npt.NDArray[np.bool_]:
    """bool[n] over every catalog row: passes the filters that depend on the catalog alone
    (blocklist, required_attributes); the same tests as `filter_candidates`."""
    rows = np.arange(len(catalog), dtype=np.int64)
    keep = np.ones(len(catalog), dtype=bool)
    if filters.blocklist:
        keep &= ~blocked(rows, catalog, filters)
    if filters.required_attributes:
        keep &= ~mismatched(rows, catalog, filters)
    return keep
