"""Bounded per-user lists of recent ids with their event times, kept in the partition's state.

The worker keeps two: each user's recent requests ("requests/<user>": what a click is checked
against) and the event ids of each user's recent impressions and clicks ("events/<user>": a
producer's duplicates, sent again with new offsets, are not learned twice). Each is a JSON list
[[id, event time in epoch seconds], ...], in the order they came, at most `capacity` per user (a
count, not an event-time window: one event stamped far in the future must not push the others
out), written through to the partition's table (so it is
changelogged with the state and follows the partition); decoded lists of the
`max_users` most recently used users stay in memory.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable

import msgspec

from online.state import StateStore

_ENCODE = msgspec.json.Encoder().encode
"""JSON of a list of (id, time) pairs, ~10x faster than json.dumps (the values read back equal:
both write the shortest repr that round-trips a float; msgspec leaves out the spaces)."""


class RecentIds:
    """Recent ids per (partition, user), persisted under "<prefix>/<user id>".

    Args:
        store_of: the state store of a partition.
        prefix: the key prefix ("requests", "events").
        capacity: the most ids kept per user (the oldest dropped first).
        max_users: decoded users kept in memory.
    """

    def __init__(self, store_of: Callable[[int], StateStore], prefix: str, capacity: int,
                 max_users: int = 100_000) -> None:
        self.store_of = store_of
        self.prefix = prefix
        self.capacity = capacity
        self.max_users = max_users
        self._users: OrderedDict[tuple[int, str], dict[str, float]] = OrderedDict()

    def key(self, user_id: str) -> str:
        return f"{self.prefix}/{user_id}"

    def of(self, partition: int, user_id: str) -> dict[str, float]:
        """The user's ids {id: event time, epoch s}, oldest first (read from the store once)."""
        slot = (partition, user_id)
        known = self._users.get(slot)
        if known is None:
            value = self.store_of(partition).get(self.key(user_id))
            known = self._users[slot] = {} if value is None else {str(i): float(t) for i, t in json.loads(value)}
            if len(self._users) > self.max_users:
                self._users.popitem(last=False)
        else:
            self._users.move_to_end(slot)
        return known

    def add(self, partition: int, user_id: str, ids: list[tuple[str, float]]) -> None:
        """Remember ids with their event times (newest last), trim, and write the user's list."""
        self.extend(partition, user_id, self.of(partition, user_id), dict(ids))

    def extend(self, partition: int, user_id: str, known: dict[str, float], new: dict[str, float]) -> None:
        """`add` for a caller that holds the user's list already (`known`, what `of` returned
        for this partition and user): add `new` {id: event time, epoch s} (newest last) to it,
        trim, and write it, without looking the user up again."""
        if not new.keys().isdisjoint(known):  # an id seen again moves to the newest end
            for one in new:
                known.pop(one, None)
        known.update(new)
        for _ in range(len(known) - self.capacity):
            del known[next(iter(known))]
        self.store_of(partition).put(self.key(user_id), _ENCODE(list(known.items())))

    def clear(self) -> None:
        """Forget the decoded lists (after a rebalance other workers may have written them)."""
        self._users.clear()
