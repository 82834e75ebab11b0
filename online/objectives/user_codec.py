"""A user's recent items (`UserMemory`) as a state blob, so the filters outlive a restart.

Catalog rows are only stable within one process (a worker that restarts rebuilds its catalog
from the items table, in arrival order), so the blob holds item ids: meta {"shown": [id, ...],
"clicked": [id, ...]} oldest first, arrays shown_times / clicked_times float64[r] (event time,
seconds since the epoch). Items the catalog no longer knows are dropped when read back.
"""

from __future__ import annotations

import numpy as np

from online.catalog import Catalog
from online.codec import pack_state, unpack_state
from online.objectives.memory import ObjectiveMemory, RecentItems, UserMemory

KIND = "objective_user"
VERSION = 1


def encode_user_memory(memory: UserMemory, catalog: Catalog) -> bytes:
    """The blob of one user's recent shown and clicked items (ids and times)."""
    meta: dict[str, list[str]] = {}
    arrays = {}
    for name, ring in (("shown", memory.shown), ("clicked", memory.clicked)):
        rows, times = ring.entries()
        meta[name] = catalog.ids_of(rows)
        arrays[f"{name}_times"] = times
    return pack_state(KIND, VERSION, meta, arrays)


def decode_user_memory(blob: bytes, catalog: Catalog, memory: ObjectiveMemory) -> UserMemory:
    """A UserMemory sized by `memory`'s settings, filled from a blob of `encode_user_memory`;
    StateCodecError for a blob of another kind or a newer version."""
    state = unpack_state(blob, KIND, VERSION)
    user = memory.new_user()
    for name, ring in (("shown", user.shown), ("clicked", user.clicked)):
        _refill(ring, state.meta[name], state.arrays[f"{name}_times"], catalog)
    return user


def _refill(ring: RecentItems, item_ids: list[str], times: np.ndarray, catalog: Catalog) -> None:
    if len(item_ids) != len(times):
        raise ValueError(f"objective user blob: {len(item_ids)} ids for {len(times)} times")
    rows = np.array([-1 if (row := catalog.row_of(item_id)) is None else row for item_id in item_ids],
                    dtype=np.int64)
    known = rows >= 0
    ring.add(rows[known], np.asarray(times, dtype=np.float64)[known])
