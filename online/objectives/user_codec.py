"""A user's recent items (`UserMemory`) as a state blob, so the filters outlive a restart.

Catalog rows are only stable within one process (a worker that restarts rebuilds its catalog
from the items table, in arrival order), so the blob holds item ids: a msgpack array
[kind, version, shown ids, shown times, clicked ids, clicked times], ids oldest first, times
in event-time seconds since the epoch (float64). Items the catalog no longer knows are
dropped when read back. msgpack rather than `online.codec.pack_state` because one blob is
written per user per observed batch: ~36 us instead of ~75 under cProfile
(bench/objectives_persistence.py measures the cost).
"""

from __future__ import annotations

import msgspec
import numpy as np

from online.catalog import Catalog
from online.codec import StateCodecError
from online.objectives.memory import ObjectiveMemory, RecentItems, UserMemory

KIND = "objective_user"
VERSION = 2


class _UserBlob(msgspec.Struct, array_like=True, frozen=True):
    kind: str
    version: int
    shown: list[str]
    shown_times: list[float]
    clicked: list[str]
    clicked_times: list[float]


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(_UserBlob)


def encode_user_memory(memory: UserMemory, catalog: Catalog) -> bytes:
    """The blob of one user's recent shown and clicked items (ids and times)."""
    shown_rows, shown_times = memory.shown.entries()
    clicked_rows, clicked_times = memory.clicked.entries()
    return _ENCODER.encode(_UserBlob(KIND, VERSION, catalog.ids_of(shown_rows), shown_times.tolist(),
                                     catalog.ids_of(clicked_rows), clicked_times.tolist()))


def decode_user_memory(blob: bytes, catalog: Catalog, memory: ObjectiveMemory) -> UserMemory:
    """A UserMemory sized by `memory`'s settings, filled from a blob of `encode_user_memory`;
    StateCodecError for a blob of another kind or version, or a malformed one."""
    try:
        state = _DECODER.decode(blob)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise StateCodecError(f"not an {KIND} blob: {error}") from error
    if state.kind != KIND or state.version != VERSION:
        raise StateCodecError(f"a {state.kind!r} v{state.version} blob, expected {KIND!r} v{VERSION}")
    user = memory.new_user()
    _refill(user.shown, state.shown, state.shown_times, catalog)
    _refill(user.clicked, state.clicked, state.clicked_times, catalog)
    return user


def _refill(ring: RecentItems, item_ids: list[str], times: list[float], catalog: Catalog) -> None:
    if len(item_ids) != len(times):
        raise StateCodecError(f"{KIND} blob: {len(item_ids)} ids for {len(times)} times")
    rows = np.array([-1 if (row := catalog.row_of(item_id)) is None else row for item_id in item_ids],
                    dtype=np.int64)
    known = rows >= 0
    ring.add(rows[known], np.asarray(times, dtype=np.float64)[known])
