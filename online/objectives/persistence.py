"""The slate objectives' memory kept in a StateStore beside the policy's state, so the shown /
clicked filters, novelty, fairness and the "popular in" reasons outlive a process.

    stored = StoredObjectives(objectives, store, "linear_ts", shard="3")
    stored.before_rank("u1", catalog)                  # windows loaded once; the user's items read back
    writes, stale = stored.observed(batch, catalog)    # the memory learns; what to write and delete

Key layout (under the policy's name, beside "<policy>/user/<id>" and "<policy>/global"):
- "<policy>/objectives/user/<user id>": a user's recent shown and clicked items (item ids,
  `online.objectives.user_codec`), written after every batch that observed the user and read back
  for a user the memory does not hold (after a restart, a rebalance, or when `max_users` dropped it);
- "<policy>/objectives/windows[/<shard>]/head" and ".../<part>": snapshots of the exposure
  windows every `windows_snapshot_s` seconds of event time (`online.objectives.window_codec`),
  loaded once, at the first rank or observe after the catalog holds items (soft state: a restart
  loses what came after the last snapshot). 0 turns the snapshots off.
"""

from __future__ import annotations

from collections.abc import Sequence

from online.catalog import Catalog
from online.objectives.objectives import Objectives
from online.objectives.window_codec import WindowSnapshots
from online.policies.base import FeedbackBatch
from online.state import StateStore

Writes = list[tuple[str, bytes]]


class StoredObjectives:
    """An Engine's `Objectives` with their memory persisted in the Engine's store.

    Args:
        objectives: the settings and the in-process memory.
        store: the Engine's state store.
        policy_name: names the keys (scenarios sharing a policy share one memory).
        shard: a Kafka partition, say: each shard snapshots its own exposure windows.
    """

    def __init__(self, objectives: Objectives, store: StateStore, policy_name: str, shard: str = "") -> None:
        self.objectives = objectives
        self.store = store
        self.prefix = f"{policy_name}/objectives"
        self.windows: WindowSnapshots | None = None
        self.windows_restored = "not snapshotted"
        if objectives.settings.windows_snapshot_s > 0:
            windows_prefix = f"{self.prefix}/windows" + (f"/{shard}" if shard else "")
            self.windows = WindowSnapshots(objectives.memory, store, windows_prefix,
                                           objectives.settings.windows_snapshot_s)
            self.windows_restored = "not loaded yet"

    def user_key(self, user_id: str) -> str:
        """Key of a user's recent shown and clicked items."""
        return f"{self.prefix}/user/{user_id}"

    def load_windows(self, catalog: Catalog) -> str:
        """Load the stored snapshot of the exposure windows, once, when the catalog holds items
        (items the catalog lacks then are dropped); says how it went."""
        if self.windows is not None and not self.windows.loaded and len(catalog):
            self.windows_restored = self.windows.restore(catalog)
        return self.windows_restored

    def snapshot(self, catalog: Catalog) -> None:
        """Write a snapshot of the exposure windows now if events came since the last (before a
        partition moves to another worker, say)."""
        if self.windows is not None and self.windows.loaded:
            writes, stale = self.windows.take(catalog)
            self.store.put_many(writes)
            for key in stale:
                self.store.delete(key)

    def _restore_users(self, user_ids: Sequence[str], catalog: Catalog, observing: bool) -> None:
        """Read back the recent items of the users the memory does not hold. When `observing`
        them, the memory cap drops none until `Objectives.observe` has (a dropped one would be
        observed into an empty memory and its stored history overwritten)."""
        missing = self.objectives.unremembered(user_ids)
        if missing:
            blobs = self.store.get_many([self.user_key(user_id) for user_id in missing])
            for user_id, blob in zip(missing, blobs, strict=True):
                self.objectives.restore_user(user_id, blob, catalog, evict=not observing)

    def before_rank(self, user_id: str, catalog: Catalog) -> None:
        """Make the memory ready to serve `user_id`: windows loaded, the user's items read back,
        the user marked as the most recently active."""
        self.load_windows(catalog)
        self._restore_users([user_id], catalog, observing=False)
        self.objectives.memory.touch(user_id)

    def observed(self, batch: FeedbackBatch, catalog: Catalog) -> tuple[Writes, list[str]]:
        """Fold a feedback batch (item ids all in the catalog) into the memory; returns the writes
        that persist it (the batch's users' items, a windows snapshot when one is due) and stale
        keys to delete after them."""
        if len(batch) == 0:
            return [], []
        self.load_windows(catalog)
        self._restore_users(batch.users, catalog, observing=True)
        self.objectives.observe(batch, catalog)
        writes: Writes = []
        for user_id in batch.users:
            blob = self.objectives.user_blob(user_id, catalog)
            if blob is not None:
                writes.append((self.user_key(user_id), blob))
        stale: list[str] = []
        if self.windows is not None:
            snapshot, stale = self.windows.observed(catalog, float(batch.times_s.max()))
            writes += snapshot
        return writes, stale

    def forget(self, user_id: str) -> None:
        """Drop a user's recent items, in memory and in the store."""
        self.objectives.memory.forget(user_id)
        self.store.delete(self.user_key(user_id))
