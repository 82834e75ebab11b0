"""The engine: the core calls every runner makes (embedded runner, Faust worker, replay).

    engine.add_items(items, vectors)    # catalog
    slate = engine.rank(request)        # one ranked slate with propensities
    result = engine.observe(events)     # a batch of impressions and clicks -> learning

State lives in a StateStore under "<policy>/global" and "<policy>/user/<user id>"; the
global state is also held in memory and written back after every observed batch.
Given `objectives` (online/objectives), rank filters the candidates and re-ranks every
Monte Carlo draw, and observe feeds the objectives' memory (exposures, recent items); each
user's recent items are stored under "<policy>/objectives/user/<user id>" with the user's
state and read back for users the memory does not hold (after a restart, a rebalance, or
when `max_users` dropped them), so the shown / clicked filters outlive the process; the
exposure windows are snapshotted under "<policy>/objectives/windows[/<shard>]/..." every
`windows_snapshot_s` of event time and loaded at the first rank or observe (`load_windows`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from online.catalog import Catalog
from online.events import Item, RankRequest, Slate
from online.features import FeatureMap, ItemFeatures
from online.feedback import build_feedback_batch
from online.objectives import Objectives
from online.objectives.window_codec import WindowSnapshots
from online.policies.base import FeedbackBatch, Policy, RankContext
from online.slates import build_slate
from online.state import StateStore
from online.wire import FeedbackEvent

Retriever = Callable[[npt.NDArray[np.float32], int, npt.NDArray[np.int64]], npt.NDArray[np.int64]]
"""(query float32[d], n, active rows int64[a]) -> the n best active rows for the query."""


class RankError(ValueError):
    """A request that cannot be ranked (e.g. none of its candidates is in the catalog)."""


@dataclass(frozen=True)
class EngineConfig:
    """n_draws: Monte Carlo draws per slate for propensities (>= 1); retrieval_size:
    candidates retrieved when a request brings none; context_cache_size: recent request
    contexts kept for joining clicks to their request's context; user_cache_size: decoded
    user states kept in memory, write-through (0 = off; use it only when this engine is
    the store's sole writer, ~2.5 KB per user for linear TS at d = 32)."""

    n_draws: int = 64
    retrieval_size: int = 200
    context_cache_size: int = 100_000
    user_cache_size: int = 0

    def __post_init__(self) -> None:
        if min(self.n_draws, self.retrieval_size) < 1 or min(self.context_cache_size, self.user_cache_size) < 0:
            raise ValueError(f"invalid EngineConfig: {self}")


@dataclass(frozen=True)
class ObserveResult:
    """How a batch went: rows learned, and events rejected with their reason."""

    learned_rows: int
    rejected: tuple[tuple[FeedbackEvent, str], ...] = field(default_factory=tuple)


def numpy_retriever(vectors: npt.NDArray[np.float32]) -> Retriever:
    """Exact dot-product retrieval over a catalog matrix float32[n, d] (CPU)."""

    def retrieve(query: npt.NDArray[np.float32], n: int, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        if len(rows) <= n:
            return rows
        scores = vectors[rows] @ query
        best = np.argpartition(-scores, n - 1)[:n]
        return rows[best]

    return retrieve


class Engine:
    """Ranks and learns for one policy over one catalog and one state store."""

    def __init__(
        self,
        policy: Policy[Any, Any],
        store: StateStore,
        catalog: Catalog,
        rng: np.random.Generator,
        features: FeatureMap | None = None,
        config: EngineConfig | None = None,
        retriever: Retriever | None = None,
        shard: str = "",
        objectives: Objectives | None = None,
    ) -> None:
        self.policy = policy
        self.objectives = objectives
        self.shard = shard
        self.store = store
        self.catalog = catalog
        self.rng = rng
        self.features: FeatureMap = features or ItemFeatures()
        self.config = config or EngineConfig()
        self._retriever = retriever
        self.feature_dim = self.features.dim(catalog.dim)
        self._contexts: OrderedDict[str, Mapping[str, float] | None] = OrderedDict()
        self._users: OrderedDict[str, Any] = OrderedDict()
        self._load_global()
        self.windows: WindowSnapshots | None = None
        self.windows_restored = "not snapshotted"
        if objectives is not None and objectives.settings.windows_snapshot_s > 0:
            prefix = f"{policy.name}/objectives/windows" + (f"/{shard}" if shard else "")
            self.windows = WindowSnapshots(objectives.memory, store, prefix, objectives.settings.windows_snapshot_s)
            self.windows_restored = "not loaded yet"

    @property
    def global_key(self) -> str:
        """Key of the global state; a shard (e.g. a Kafka partition) keeps its own."""
        return f"{self.policy.name}/global/{self.shard}" if self.shard else f"{self.policy.name}/global"

    def _load_global(self) -> None:
        """Read the global state. A policy whose global state grows with the catalog keeps it
        in parts ("<global key>#<part>", written only when changed) in a store whose put_many
        is atomic (`atomic_put_many`: a batch of parts and its head land together or not at
        all); elsewhere (the worker's changelogged tables) it is one value, written whole."""
        in_parts = self.policy.stores_global_in_parts and getattr(self.store, "atomic_put_many", False)
        self._parts_prefix: str | None = f"{self.global_key}#" if in_parts else None
        self._stored_global: Any = None  # the version the store holds in parts (None: unknown)
        blob = self.store.get(self.global_key)
        prefix = self._parts_prefix
        if prefix is not None and blob is not None:
            parts = ((key[len(prefix) :], value) for key, value in self.store.scan_prefix(prefix))
            self.global_state = self.policy.decode_global_parts(blob, parts)
        elif blob is not None:
            self.global_state = self.policy.decode_global(blob)
        else:
            self.global_state = self.policy.init_global(self.feature_dim)

    def _global_writes(self) -> list[tuple[str, bytes | None]]:
        """The store writes that save the global state: its changed parts (None: a part to
        delete) and head, or the whole blob."""
        if self._parts_prefix is not None:
            encoded = self.policy.encode_global_parts(self.global_state, self._stored_global)
            if encoded is not None:
                head, parts = encoded
                self._stored_global = self.global_state
                return [(self._parts_prefix + name, blob) for name, blob in parts] + [(self.global_key, head)]
        return [(self.global_key, self.policy.encode_global(self.global_state))]

    def _put(self, writes: Sequence[tuple[str, bytes | None]], stale: Sequence[str] = ()) -> None:
        """One put_many (a part to delete is written empty in it, so the batch lands whole
        either way), then the deletions (an empty part left by a crash reads as deleted)."""
        self.store.put_many([(key, b"" if blob is None else blob) for key, blob in writes])
        for key in [*(key for key, blob in writes if blob is None), *stale]:
            self.store.delete(key)

    def user_key(self, user_id: str) -> str:
        return f"{self.policy.name}/user/{user_id}"

    def objectives_user_key(self, user_id: str) -> str:
        """Key of a user's recent shown and clicked items (the objectives' filters and reasons)."""
        return f"{self.policy.name}/objectives/user/{user_id}"

    def _restore_objective_users(self, user_ids: Sequence[str], observing: bool) -> None:
        """Read back the recent items of the users the objectives' memory does not hold. When
        `observing` them, the memory cap drops none until `Objectives.observe` has (a dropped
        one would be observed into an empty memory and its stored history overwritten)."""
        objectives = self.objectives
        if objectives is None:
            return
        missing = objectives.unremembered(user_ids)
        if missing:
            blobs = self.store.get_many([self.objectives_user_key(user_id) for user_id in missing])
            for user_id, blob in zip(missing, blobs, strict=True):
                objectives.restore_user(user_id, blob, self.catalog, evict=not observing)

    def load_windows(self) -> str:
        """Load the stored snapshot of the exposure windows, once, when the catalog holds items
        (rank and observe call it first; items the catalog lacks then are dropped); says how."""
        if self.windows is not None and not self.windows.loaded and len(self.catalog):
            self.windows_restored = self.windows.restore(self.catalog)
        return self.windows_restored

    def snapshot_windows(self) -> None:
        """Write a snapshot of the exposure windows now if events came since the last (before
        a partition moves to another worker, say)."""
        if self.windows is not None and self.windows.loaded:
            writes, stale = self.windows.take(self.catalog)
            self.store.put_many(writes)
            for key in stale:
                self.store.delete(key)

    def add_items(
        self,
        items: Sequence[Item],
        vectors: npt.NDArray[np.float32],
        diversity_vectors: npt.NDArray[np.float32] | None = None,
    ) -> None:
        """Add or update catalog items with their bandit vectors float32[len(items), d] and,
        when the catalog has a diversity space, their embeddings float32[len(items), e]."""
        self.catalog.upsert(items, vectors, diversity_vectors=diversity_vectors)

    def load_user(self, user_id: str) -> Any:
        """A user's decoded state (None for an unseen user or a policy without one)."""
        if not self.policy.uses_user_state:
            return None
        return self.load_users([user_id])[user_id]

    def load_users(self, user_ids: Sequence[str]) -> dict[str, Any]:
        """Decoded states of several users: from the write-through cache, else the store."""
        states: dict[str, Any] = {}
        missing: list[str] = []
        for user_id in user_ids:
            if user_id in self._users:
                self._users.move_to_end(user_id)
                states[user_id] = self._users[user_id]
            else:
                missing.append(user_id)
        if missing:
            blobs = self.store.get_many([self.user_key(u) for u in missing])
            found = [(user_id, blob) for user_id, blob in zip(missing, blobs, strict=True) if blob is not None]
            states.update(dict.fromkeys(missing))
            states.update(zip([u for u, _ in found], self.policy.decode_users([b for _, b in found]), strict=True))
            self._cache_users({u: states[u] for u in missing})
        return states

    def _cache_users(self, states: Mapping[str, Any]) -> None:
        if self.config.user_cache_size == 0:
            return
        for user_id, state in states.items():
            self._users[user_id] = state
            self._users.move_to_end(user_id)
        while len(self._users) > self.config.user_cache_size:
            self._users.popitem(last=False)

    def candidate_rows(self, request: RankRequest, user_state: Any) -> npt.NDArray[np.int64]:
        """Catalog rows to rank: the request's known active candidates, else retrieval."""
        if request.candidates is not None:
            rows = self.catalog.active_rows(request.candidates)
            if len(rows) == 0:
                raise RankError(f"request {request.request_id}: no candidate is in the catalog")
            return rows
        active = np.flatnonzero(self.catalog.active).astype(np.int64)
        if len(active) == 0:
            raise RankError(f"request {request.request_id}: the catalog has no active item")
        query = self.policy.user_vector(self.global_state, user_state, request.scenario)
        if query is None or len(active) <= self.config.retrieval_size:
            return active
        item_query = np.asarray(query[: self.catalog.dim], dtype=np.float32)
        retrieve = self._retriever or numpy_retriever(self.catalog.vectors)
        return np.sort(retrieve(item_query, self.config.retrieval_size, active))

    def rank(self, request: RankRequest) -> Slate:
        """The slate for a request (raises RankError when nothing can be ranked)."""
        user_state = self.load_user(request.user_id)
        rows = self.candidate_rows(request, user_state)
        objectives = self.objectives
        if objectives is not None:
            self.load_windows()
            self._restore_objective_users([request.user_id], observing=False)
            objectives.memory.touch(request.user_id)
            kept = objectives.filter(request, rows, self.catalog)
            if len(kept.rows) == 0:
                raise RankError(f"request {request.request_id}: the filters removed every candidate "
                                f"({kept.describe()})")
            rows = kept.rows
        item_ids = self.catalog.id_view(rows)
        features = self.features.transform(self.catalog.vectors[rows], request.context)
        context = RankContext(
            request.user_id, request.scenario, item_ids, features, request.time.timestamp()
        )
        draws = self.policy.sample_scores(
            self.global_state, user_state, context, self.rng, self.config.n_draws
        )
        self._remember_context(request.request_id, request.context)
        if objectives is None:
            return build_slate(request, item_ids, draws, self.policy.name, self.policy.version, request.time)
        ranking = objectives.rank(request, rows, draws, self.catalog)
        reasons = objectives.reasons(request, rows, ranking, self.catalog)
        return build_slate(request, item_ids, draws, self.policy.name, self.policy.version, request.time,
                           reasons, ranking.ranked, ranking.greedy)

    def _remember_context(self, request_id: str, context: Mapping[str, float] | None) -> None:
        if self.config.context_cache_size == 0:
            return
        self._contexts[request_id] = context
        while len(self._contexts) > self.config.context_cache_size:
            self._contexts.popitem(last=False)

    def feedback_batch(
        self, events: Sequence[FeedbackEvent]
    ) -> tuple[FeedbackBatch, list[tuple[FeedbackEvent, str]]]:
        """Rows for the learnable events (in order), plus rejected events with a reason.

        An impression gives one exposure row per shown item; a click one reward row
        (online.feedback.build_feedback_batch).
        """
        return build_feedback_batch(events, self.catalog.index, self.catalog.vectors, self.features,
                                    self._remember_context, self._contexts.get)

    def observe(
        self,
        events: Sequence[FeedbackEvent],
        global_events: Sequence[FeedbackEvent] | None = None,
    ) -> ObserveResult:
        """Learn from a batch of impressions and clicks (in log order) and persist.

        `global_events`, when given, is the subset the global state learns from instead of
        `events` (after a crash, a replayed batch may already be in some states and not in
        others; the caller filters by applied offsets so nothing counts twice).
        """
        batch, rejected = self.feedback_batch(events)
        memory_writes: list[tuple[str, bytes]] = []
        stale: list[str] = []
        if self.objectives is not None and len(batch):
            self.load_windows()
            self._restore_objective_users(batch.users, observing=True)
            self.objectives.observe(batch, self.catalog)
            for user_id in batch.users:
                blob = self.objectives.user_blob(user_id, self.catalog)
                if blob is not None:
                    memory_writes.append((self.objectives_user_key(user_id), blob))
            if self.windows is not None:
                snapshot, stale = self.windows.observed(self.catalog, float(batch.times_s.max()))
                memory_writes += snapshot
        if global_events is not None:
            global_batch, _ = self.feedback_batch(global_events)
            if len(global_batch):
                self.global_state, _ = self.policy.learn(self.global_state, {}, global_batch)
        if len(batch) == 0:
            if global_events is not None:
                self._put(self._global_writes())
            return ObserveResult(0, tuple(rejected))
        user_ids = batch.users
        states = self.load_users(user_ids) if self.policy.uses_user_state else {}
        new_global, updated = self.policy.learn(self.global_state, states, batch)
        if global_events is None:
            self.global_state = new_global
        learned = [(u, s) for u, s in updated.items() if s is not None]
        blobs = self.policy.encode_users([s for _, s in learned])
        writes: list[tuple[str, bytes | None]] = [
            (self.user_key(u), blob) for (u, _), blob in zip(learned, blobs, strict=True)
        ]
        self._put([*writes, *self._global_writes(), *memory_writes], stale)
        self._cache_users(updated)
        return ObserveResult(len(batch), tuple(rejected))

    def forget(self, user_id: str) -> None:
        """Remove a user's state and, where the policy can, its contribution to the global
        state (right to be forgotten; see Policy.unlearn)."""
        user_state = self.load_user(user_id)
        self._users.pop(user_id, None)
        if self.objectives is not None:
            self.objectives.memory.forget(user_id)
            self.store.delete(self.objectives_user_key(user_id))
        # Delete first: a crash between the two writes then leaves the contribution in (a
        # repeated forget finds no user and does nothing), never subtracted twice.
        self.store.delete(self.user_key(user_id))
        if user_state is not None:
            unlearned = self.policy.unlearn(self.global_state, user_state)
            if unlearned is not self.global_state:
                self.global_state = unlearned
                self._put(self._global_writes())
