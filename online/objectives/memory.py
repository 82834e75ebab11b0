"""What the objectives remember between requests: windowed exposure counts, recent items per user.

Pure and in memory (no I/O). Keys are integers: catalog rows (stable for an item's life,
see online/catalog.py) or group codes. Time is event time in seconds since the epoch, so a
replay of the same events gives the same memory.

Memory bound (int32 buckets + int64 totals, R = catalog rows, G = groups, B = window
buckets; arrays grow by doubling, so up to 2x): item exposures (4 B + 8) R bytes, group
exposures (4 B + 8) G, scenario clicks (4 B + 8) R per scenario (at most
`MAX_SCENARIOS`), and per remembered user
12 * (recent_shown + recent_clicked) bytes plus ~0.5 KB overhead, for at most `max_users`
(or the distinct users of one observed batch, when more: a batch's users are never dropped
while it is folded in, so their stored history can be written back whole).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from itertools import islice

import numpy as np
import numpy.typing as npt

from online.objectives.settings import ObjectiveSettings

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

MAX_SCENARIOS = 64
"""Scenarios whose click popularity is kept (least recently clicked dropped beyond)."""


class ExposureWindow:
    """Event counts per integer key over a sliding window of event time.

    The window is `n_buckets` buckets of window_s / n_buckets seconds; counts of buckets
    older than the newest bucket minus n_buckets - 1 expire. Events older than the window
    (relative to the newest event seen) are ignored.
    """

    def __init__(self, window_s: float, n_buckets: int) -> None:
        if window_s <= 0 or n_buckets < 1:
            raise ValueError(f"ExposureWindow: window_s must be > 0 and n_buckets >= 1, got {window_s}, {n_buckets}")
        self.bucket_s = window_s / n_buckets
        self.n_buckets = n_buckets
        self._buckets = np.zeros((n_buckets, 0), dtype=np.int32)
        self._totals = np.zeros(0, dtype=np.int64)
        self._newest: int | None = None

    @property
    def total(self) -> int:
        """Events counted in the window, all keys."""
        return int(self._totals.sum())

    def add(self, keys: IntArray, times_s: FloatArray) -> None:
        """Count one event per entry: keys int64[e] (>= 0) at times_s float64[e]."""
        keys = np.asarray(keys, dtype=np.int64)
        if keys.size == 0:
            return
        if keys.min() < 0:
            raise ValueError("keys: must be >= 0")
        buckets = np.floor(np.asarray(times_s, dtype=np.float64) / self.bucket_s).astype(np.int64)
        self._advance(int(buckets.max()))
        assert self._newest is not None
        live = buckets > self._newest - self.n_buckets
        keys, buckets = keys[live], buckets[live]
        self._grow(int(keys.max(initial=-1)) + 1)
        np.add.at(self._buckets, (buckets % self.n_buckets, keys), 1)
        self._totals += np.bincount(keys, minlength=self._totals.size)

    def snapshot(self) -> tuple[IntArray, npt.NDArray[np.int32], int | None]:
        """(keys int64[n] with events in the window, their counts int32[n_buckets, n] by ring
        slot (bucket index % n_buckets), the newest bucket index; None when nothing was added)."""
        keys = np.flatnonzero(self._totals)
        return keys, self._buckets[:, keys].copy(), self._newest

    def load(self, keys: IntArray, buckets: npt.NDArray[np.int32], newest: int) -> None:
        """Add the counts of a `snapshot` (keys int64[n] distinct and not yet loaded, buckets
        int32[n_buckets, n]) to a window that has seen no event, or only other loads of the
        same newest bucket."""
        keys = np.asarray(keys, dtype=np.int64)
        if buckets.shape != (self.n_buckets, keys.size):
            raise ValueError(f"ExposureWindow.load: buckets of shape {buckets.shape}, expected "
                             f"({self.n_buckets}, {keys.size})")
        if self._newest is not None and self._newest != newest:
            raise ValueError("ExposureWindow.load: the window already holds other events")
        self._newest = newest
        if keys.size:
            self._grow(int(keys.max()) + 1)
            self._buckets[:, keys] += buckets
            self._totals[keys] += buckets.sum(axis=0, dtype=np.int64)

    def counts(self, keys: IntArray) -> FloatArray:
        """float64[len(keys)]: events of each key in the window (0 for unseen keys)."""
        keys = np.asarray(keys, dtype=np.int64)
        out = np.zeros(keys.size, dtype=np.float64)
        known = keys < self._totals.size
        out[known] = self._totals[keys[known]]
        return out

    def _advance(self, bucket: int) -> None:
        if self._newest is None:
            self._newest = bucket
            return
        steps = min(bucket - self._newest, self.n_buckets)
        for offset in range(1, steps + 1):
            slot = (self._newest + offset) % self.n_buckets
            self._totals -= self._buckets[slot]
            self._buckets[slot] = 0
        self._newest = max(self._newest, bucket)

    def _grow(self, size: int) -> None:
        if size <= self._totals.size:
            return
        capacity = max(size, 2 * self._totals.size, 64)
        buckets = np.zeros((self.n_buckets, capacity), dtype=np.int32)
        buckets[:, : self._totals.size] = self._buckets
        totals = np.zeros(capacity, dtype=np.int64)
        totals[: self._totals.size] = self._totals
        self._buckets, self._totals = buckets, totals


class RecentItems:
    """The last `capacity` (row, time) pairs, a ring buffer: int64 rows, float64 times."""

    def __init__(self, capacity: int) -> None:
        self._rows = np.full(capacity, -1, dtype=np.int64)
        self._times = np.full(capacity, -np.inf)
        self._next = 0

    def add(self, rows: IntArray, times_s: FloatArray) -> None:
        """Append rows int64[e] at times float64[e] (oldest overwritten)."""
        capacity = self._rows.size
        for row, time_s in zip(np.asarray(rows).tolist()[-capacity:], np.asarray(times_s).tolist()[-capacity:],
                               strict=True):
            self._rows[self._next] = row
            self._times[self._next] = time_s
            self._next = (self._next + 1) % capacity

    def entries(self) -> tuple[IntArray, FloatArray]:
        """(rows int64[r], times float64[r]) held, oldest first (what `add` would rebuild it from)."""
        rows = np.concatenate((self._rows[self._next :], self._rows[: self._next]))
        times = np.concatenate((self._times[self._next :], self._times[: self._next]))
        held = rows >= 0
        return rows[held], times[held]

    def since(self, time_s: float) -> IntArray:
        """int64[r]: distinct rows added at or after time_s."""
        return np.unique(self._rows[(self._times >= time_s) & (self._rows >= 0)])

    def latest(self) -> IntArray:
        """int64[r]: distinct rows, most recent first."""
        order = np.argsort(-self._times, kind="stable")
        rows = self._rows[order]
        rows = rows[rows >= 0]
        _, first = np.unique(rows, return_index=True)
        return rows[np.sort(first)]


@dataclass
class UserMemory:
    """One user's recently shown and clicked catalog rows."""

    shown: RecentItems
    clicked: RecentItems


class ObjectiveMemory:
    """Exposure windows (per item row, per group code, clicks per scenario) and recent
    items per user, updated from observed impressions and clicks; see module doc."""

    def __init__(self, settings: ObjectiveSettings) -> None:
        self.settings = settings
        self.item_exposure = ExposureWindow(settings.exposure_window_s, settings.window_buckets)
        self.group_exposure = ExposureWindow(settings.exposure_window_s, settings.window_buckets)
        self.group_codes: dict[str, int] = {}
        self.scenario_clicks: OrderedDict[str, ExposureWindow] = OrderedDict()
        self.users: OrderedDict[str, UserMemory] = OrderedDict()

    def group_code(self, group: str) -> int:
        """The integer code of a group name (assigned on first sight)."""
        return self.group_codes.setdefault(group, len(self.group_codes))

    def observe(
        self,
        user_ids: Sequence[str],
        scenarios: Sequence[str],
        rows: IntArray,
        exposures: FloatArray,
        times_s: FloatArray,
        groups: Sequence[str | None] | None = None,
    ) -> None:
        """Fold in e feedback rows: user and scenario per row, catalog rows int64[e],
        exposures float64[e] (1 = shown, 0 = a click), event times float64[e], and each
        row's fairness group name (None = none; groups None = per-item fairness)."""
        rows = np.asarray(rows, dtype=np.int64)
        shown = np.asarray(exposures) > 0
        times_s = np.asarray(times_s, dtype=np.float64)
        self.item_exposure.add(rows[shown], times_s[shown])
        if groups is not None:
            codes = np.array([-1 if g is None else self.group_code(g) for g in groups], dtype=np.int64)
            keep = shown & (codes >= 0)
            self.group_exposure.add(codes[keep], times_s[keep])
        clicked = np.flatnonzero(~shown)
        for scenario in sorted({scenarios[i] for i in clicked.tolist()}):
            picked = clicked[[scenarios[i] == scenario for i in clicked.tolist()]]
            self.scenario_window(scenario).add(rows[picked], times_s[picked])
        by_user: dict[str, list[int]] = {}
        for index, user_id in enumerate(user_ids):
            by_user.setdefault(user_id, []).append(index)
        for user_id, indices in by_user.items():
            picked_rows = np.asarray(indices, dtype=np.int64)
            memory = self._user(user_id)
            is_shown = shown[picked_rows]
            memory.shown.add(rows[picked_rows[is_shown]], times_s[picked_rows[is_shown]])
            memory.clicked.add(rows[picked_rows[~is_shown]], times_s[picked_rows[~is_shown]])
        self._evict(keep=by_user.keys())

    def user(self, user_id: str) -> UserMemory | None:
        """A user's recent items, or None when none are remembered."""
        return self.users.get(user_id)

    def new_user(self) -> UserMemory:
        """An empty UserMemory sized by the settings (not remembered until `restore`)."""
        return UserMemory(RecentItems(self.settings.recent_shown_per_user),
                          RecentItems(self.settings.recent_clicked_per_user))

    def restore(self, user_id: str, memory: UserMemory, evict: bool = True) -> None:
        """Remember a user's recent items read back from storage (kept if already remembered).
        With `evict`, users beyond `max_users` are then dropped, least recently active first,
        never this one; without, none is (for users about to be observed: `observe` evicts
        once at its end and keeps its batch's users, so a batch costs O(users), not O(users^2))."""
        if user_id not in self.users:
            self.users[user_id] = memory
            if evict:
                self._evict(keep=(user_id,))

    def touch(self, user_id: str) -> None:
        """Mark a remembered user as the most recently active (e.g. on a request)."""
        if user_id in self.users:
            self.users.move_to_end(user_id)

    def scenario_click_counts(self, scenario: str, rows: IntArray) -> FloatArray:
        """float64[len(rows)]: clicks on each row in `scenario` within the window."""
        window = self.scenario_clicks.get(scenario)
        return np.zeros(len(rows)) if window is None else window.counts(rows)

    def forget(self, user_id: str) -> None:
        """Drop a user's recent items (their share of windowed counts is anonymous)."""
        self.users.pop(user_id, None)

    def _user(self, user_id: str) -> UserMemory:
        memory = self.users.get(user_id)
        if memory is None:
            memory = self.users[user_id] = self.new_user()
        else:
            self.users.move_to_end(user_id)
        return memory

    def _evict(self, keep: Collection[str]) -> None:
        """Drop the least recently active users beyond `max_users`, never one in `keep`."""
        excess = len(self.users) - self.settings.max_users
        if excess > 0:
            for user_id in list(islice((u for u in self.users if u not in keep), excess)):
                del self.users[user_id]

    def scenario_window(self, scenario: str) -> ExposureWindow:
        """The click window of a scenario (created on first use; least recently used dropped
        beyond MAX_SCENARIOS)."""
        window = self.scenario_clicks.get(scenario)
        if window is None:
            window = ExposureWindow(self.settings.exposure_window_s, self.settings.window_buckets)
            self.scenario_clicks[scenario] = window
            while len(self.scenario_clicks) > MAX_SCENARIOS:
                self.scenario_clicks.popitem(last=False)
        else:
            self.scenario_clicks.move_to_end(scenario)
        return window
