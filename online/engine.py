"""The engine: the core calls every runner makes (embedded runner, Faust worker, evaluation).

    engine.add_items(items, vectors)    # catalog
    slate = engine.rank(request)        # one ranked slate with propensities
    scored = engine.score(request)      # the same step, every Monte Carlo draw's ranking kept
    result = engine.observe(events)     # a batch of impressions and clicks -> learning

State lives in a StateStore under "<policy>/global" and "<policy>/user/<user id>"; the
global state is also held in memory and written back after every observed batch.
Given `objectives` (online/objectives), `score` filters the candidates and re-ranks every
Monte Carlo draw, and observe feeds the objectives' memory, which is kept in the same store
(`online.objectives.persistence.StoredObjectives`: users' recent items, exposure-window
snapshots). `rank` is `score` plus the slate: serving and the offline evaluation rank through
the same step.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from online.catalog import Catalog
from online.events import Item, RankRequest, Slate
from online.features import FeatureMap, ItemFeatures
from online.feedback import RequestContexts, feedback_rows
from online.objectives import Objectives, Ranking
from online.objectives.persistence import StoredObjectives
from online.policies.arms import UniformRandom
from online.policies.base import FeedbackBatch, Policy, RankContext, ScoreDraws
from online.propensities import SupportRecord, serve, slate_propensities
from online.request_text import TextEmbed, text_shift, text_weight
from online.retrieval import Retriever, numpy_retriever
from online.slates import build_slate, top_k
from online.state import StateStore
from online.state_version import StateEmbeddingGuard
from online.wire import FeedbackEvent


class RankError(ValueError):
    """A request that cannot be ranked (e.g. none of its candidates is in the catalog)."""


class EngineConfig(BaseModel):
    """How an Engine ranks and what it keeps in memory (the `[engine]` table of a configuration
    file, online.config; one default per setting, used by every runner).

    n_draws: Monte Carlo draws per slate for propensities (>= 1); retrieval_size:
    candidates retrieved when a request brings none (a scenario may set its own);
    context_cache_size: recent request contexts kept for joining clicks to their request's
    context; text_weight, text_evidence: how a request's text steers users with little history
    (online.request_text; 0: text unused); user_cache_size: decoded user states kept in memory,
    write-through (0 = off; ~2.5 KB
    per user for linear TS at d = 32). An Engine must be its store's sole writer (the worker
    drops its engines when partitions move), else turn the cache off. support_epsilon: the
    probability that a served slate is a uniformly random ranking of the candidates instead
    (online/propensities.py), so every candidate has probability >= support_epsilon / n at
    every position and the logs support evaluating any policy (0 = off).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_draws: int = Field(default=64, ge=1)
    retrieval_size: int = Field(default=200, ge=1)
    context_cache_size: int = Field(default=100_000, ge=0)
    user_cache_size: int = Field(default=20_000, ge=0)
    text_weight: float = Field(default=0.4, ge=0.0, allow_inf_nan=False)
    text_evidence: float = Field(default=20.0, gt=0.0, allow_inf_nan=False)
    support_epsilon: float = Field(default=0.05, ge=0.0, le=1.0)


@dataclass(frozen=True)
class ObserveResult:
    """How a batch went: rows learned, and events rejected with their reason."""

    learned_rows: int
    rejected: tuple[tuple[FeedbackEvent, str], ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Scored:
    """One request through the ranking step, every Monte Carlo draw kept.

    rows: int64[n] catalog rows of the candidates (after filters); item_ids: their n ids;
    draws: the policy's m score draws over them; ranking: the slate each draw yields
    (ranked int64[m, k], row 0 served) and the slate of the posterior means (greedy int64[k]).
    """

    rows: npt.NDArray[np.int64]
    item_ids: Sequence[str]
    draws: ScoreDraws
    ranking: Ranking


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
        embedding_version: Callable[[], str] | None = None,
        embed_text: TextEmbed | None = None,
    ) -> None:
        self.policy = policy
        self.embed_text = embed_text
        self.embedding_version = embedding_version or (lambda: "")
        self.guard = StateEmbeddingGuard(store, policy.name, self.embedding_version)
        self.objectives = objectives
        self.shard = shard
        self.store = store
        self.catalog = catalog
        self.rng = rng
        self.features: FeatureMap = features or ItemFeatures()
        self.config = config or EngineConfig()
        self._retriever = retriever
        self.feature_dim = self.features.dim(catalog.dim)
        self._contexts = RequestContexts(self.config.context_cache_size)
        self._users: OrderedDict[str, Any] = OrderedDict()
        self._load_global()
        self.stored_objectives = None if objectives is None else StoredObjectives(objectives, store, policy.name,
                                                                                   shard)

    @property
    def policy_version(self) -> str:
        """The slates' policy version: the policy's hyperparameter hash, and the item embedding's
        version when known (the state is only meaningful with those vectors)."""
        embedding = self.embedding_version()
        return f"{self.policy.version}+{embedding}" if embedding else self.policy.version

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

    def _check_embedding(self) -> None:
        """EmbeddingMismatchError when the state was learned under another item embedding; the
        first use records this one (online.state_version)."""
        writes = self.guard.check()
        if writes:
            self.store.put_many(writes)

    def user_key(self, user_id: str) -> str:
        return f"{self.policy.name}/user/{user_id}"

    def user_keys(self, user_id: str) -> list[str]:
        """Every key that holds some of a user's state: the policy's, and the objectives' memory."""
        keys = [self.user_key(user_id)]
        if self.stored_objectives is not None:
            keys.append(self.stored_objectives.user_key(user_id))
        return keys

    def restore_soft_state(self) -> str | None:
        """Load the objectives' exposure-window snapshot if not done yet (rank and observe do it
        at first use, once the catalog holds items); says how it went (None: no objectives)."""
        stored = self.stored_objectives
        return None if stored is None else stored.load_windows(self.catalog)

    def snapshot_soft_state(self) -> None:
        """Write a snapshot of the objectives' exposure windows now if events came since the
        last (before a partition moves to another worker, say)."""
        if self.stored_objectives is not None:
            self.stored_objectives.snapshot(self.catalog)

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

    def candidate_rows(self, request: RankRequest, user_state: Any,
                       text_query: npt.NDArray[np.float32] | None = None,
                       pool: npt.NDArray[np.int64] | None = None) -> npt.NDArray[np.int64]:
        """Catalog rows to rank: the request's known active candidates, else retrieval by the
        user's vector plus `text_query` (the weighted request text, online.request_text) among
        `pool` (int64[r] rows the filters allow, `Objectives.retrieval_pool`; None: every active
        row)."""
        if request.candidates is not None:
            rows = self.catalog.active_rows(request.candidates)
            if len(rows) == 0:
                raise RankError(f"request {request.request_id}: no candidate is in the catalog "
                                f"(first of {len(request.candidates)}: {request.candidates[0][:200]!r})")
            return rows
        active = np.flatnonzero(self.catalog.active).astype(np.int64) if pool is None else pool
        if len(active) == 0:
            raise RankError(f"request {request.request_id}: " + (
                "the catalog has no active item" if pool is None else self._filtered_out(request)))
        if len(active) <= self.config.retrieval_size:
            return active  # every active item is a candidate: no user query needed
        query = self.policy.user_vector(self.global_state, user_state, request.scenario)
        if query is None and text_query is None:
            return active
        item_query = np.zeros(self.catalog.dim, np.float32) if query is None else np.asarray(
            query[: self.catalog.dim], dtype=np.float32)
        if text_query is not None:
            item_query = item_query + text_query
        retrieve = self._retriever or numpy_retriever(self.catalog.vectors)
        return np.sort(retrieve(item_query, self.config.retrieval_size, active))

    def score(self, request: RankRequest, n_draws: int | None = None) -> Scored:
        """The ranking step: candidates (retrieved when the request brings none), cut by the
        filters, m = n_draws (default `config.n_draws`) score draws, each draw's slate (re-ranked
        by the objectives). RankError when nothing can be ranked."""
        self._check_embedding()
        user_state = self.load_user(request.user_id)
        text = self._text_query(request, user_state)
        objectives = self.objectives
        pool = None
        if objectives is not None:
            assert self.stored_objectives is not None
            self.stored_objectives.before_rank(request.user_id, self.catalog)
            if request.candidates is None:  # retrieve among the items the filters allow
                pool = objectives.retrieval_pool(request, self.catalog)
        rows = self.candidate_rows(request, user_state, text, pool)
        if objectives is not None and pool is None:  # a pool is filtered already
            kept = objectives.filter(request, rows, self.catalog)
            if len(kept.rows) == 0:
                raise RankError(f"request {request.request_id}: the filters removed every candidate "
                                f"({kept.describe()})")
            rows = kept.rows
        item_ids = self.catalog.id_view(rows)
        features = self.features.transform(self.catalog.vectors.take(rows, axis=0), request.context,
                                           self.policy.score_dtype)
        context = RankContext(request.user_id, request.scenario, item_ids, features, request.time.timestamp())
        draws = self.policy.sample_scores(self.global_state, user_state, context, self.rng,
                                          n_draws or self.config.n_draws)
        if text is not None:  # the same shift in every draw: the propensities stay the procedure's
            shift = text_shift(self.catalog.vectors[rows], text, 1.0)
            draws = ScoreDraws(draws.draws + shift[None, :], draws.mean + shift, draws.std)
        if objectives is not None:
            return Scored(rows, item_ids, draws, objectives.rank(request, rows, draws, self.catalog))
        k = min(request.k, len(item_ids))
        return Scored(rows, item_ids, draws, Ranking(top_k(draws.draws, k), top_k(draws.mean[None, :], k)[0]))

    def _filtered_out(self, request: RankRequest) -> str:
        """Why the filters leave nothing of the active catalog to retrieve (the error path only)."""
        assert self.objectives is not None
        active = np.flatnonzero(self.catalog.active).astype(np.int64)
        if len(active) == 0:
            return "the catalog has no active item"
        kept = self.objectives.filter(request, active, self.catalog)
        return f"the filters removed every one of the {len(active)} active items ({kept.describe()})"

    def _text_query(self, request: RankRequest, user_state: Any) -> npt.NDArray[np.float32] | None:
        """w * q: the request text's vector weighted for this user (online.request_text), or None."""
        if not request.context_text or self.embed_text is None or self.config.text_weight <= 0:
            return None
        weight = text_weight(self.config.text_weight, self.config.text_evidence,
                             self.policy.user_evidence(user_state))
        return (weight * self.embed_text(request.context_text)).astype(np.float32)

    def ranks_uniformly(self, request: RankRequest) -> bool:
        """Whether this engine's answer to `request` is a uniformly random ranking of its
        candidates: a `uniform_random` policy with no objectives and no request-text shift."""
        return (type(self.policy) is UniformRandom and self.objectives is None
                and (not request.context_text or self.embed_text is None or self.config.text_weight <= 0))

    def rank(self, request: RankRequest) -> Slate:
        """The slate for a request: `score`, then draw 0's slate (or, with probability
        `config.support_epsilon`, a uniformly random ranking) with its reasons and its
        propensities: marginal and prefix, the share of draws agreeing with it mixed with the
        uniform ranking's exact probabilities (online/propensities.py), and the candidates it
        ranked. A uniformly random procedure (`ranks_uniformly`) records its exact probabilities
        (1/n, 1/(n (n-1) ...)) and support_epsilon 1.0: the slate is a uniform ranking whichever
        branch served it. RankError when nothing can be ranked."""
        scored = self.score(request)
        self._remember_context(request.request_id, request.context)
        epsilon, n = self.config.support_epsilon, len(scored.item_ids)
        served, uniform = serve(scored.ranking.ranked, n, epsilon, self.rng)
        if self.ranks_uniformly(request):
            epsilon = 1.0  # recorded only: the same draws served, its exact probabilities recorded
        ranking = scored.ranking
        if uniform:  # build_slate serves row 0
            ranking = Ranking(np.vstack([served[None, :], ranking.ranked[1:]]), ranking.greedy)
        reasons = None
        if self.objectives is not None:
            reasons = self.objectives.reasons(request, scored.rows, ranking, self.catalog)
        ranked_ids = None if request.candidates is not None and len(request.candidates) == n else scored.item_ids
        return build_slate(request, scored.item_ids, scored.draws, self.policy.name, self.policy_version,
                           request.time, reasons, ranking.ranked, ranking.greedy,
                           slate_propensities(scored.ranking.ranked, served, n, epsilon),
                           SupportRecord(ranked_ids, epsilon, scored.ranking.ranked.shape[0]))

    def _remember_context(self, request_id: str, context: Mapping[str, float] | None) -> None:
        self._contexts.remember(request_id, context)

    def feedback_batch(
        self, events: Sequence[FeedbackEvent]
    ) -> tuple[FeedbackBatch, list[tuple[FeedbackEvent, str]]]:
        """Rows for the learnable events (in order), plus rejected events with a reason
        (`online.feedback.feedback_rows`)."""
        return feedback_rows(events, self.catalog, self.features, self._contexts)

    def observe(
        self,
        events: Sequence[FeedbackEvent],
        global_events: Sequence[FeedbackEvent] | None = None,
        feed_objectives: bool = True,
    ) -> ObserveResult:
        """Learn from a batch of impressions and clicks (in log order) and persist.

        `global_events`, when given, is the subset the global state learns from instead of
        `events` (after a crash, a replayed batch may already be in some states and not in
        others; the caller filters by applied offsets so nothing counts twice). Without
        `feed_objectives` the objectives' memory does not see the batch (the evaluation feeds it
        the slates the evaluated policy would have served instead: `observe_objectives`).
        """
        self._check_embedding()
        batch, rejected = self.feedback_batch(events)
        memory_writes, stale = self._observe_objectives(batch) if feed_objectives else ([], [])
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

    def _observe_objectives(self, batch: FeedbackBatch) -> tuple[list[tuple[str, bytes]], list[str]]:
        if self.stored_objectives is None:
            return [], []
        return self.stored_objectives.observed(batch, self.catalog)

    def observe_objectives(self, events: Sequence[FeedbackEvent]) -> None:
        """Feed only the objectives' memory (exposures, recent items) with a batch, and persist
        it; the policy learns nothing. Events on unknown items are skipped."""
        batch, _ = self.feedback_batch(events)
        writes, stale = self._observe_objectives(batch)
        self.store.put_many(writes)
        for key in stale:
            self.store.delete(key)

    def forget(self, user_id: str) -> None:
        """Remove a user's state and, where the policy can, its contribution to the global
        state (right to be forgotten; see Policy.unlearn)."""
        user_state = self.load_user(user_id)
        self._users.pop(user_id, None)
        if self.stored_objectives is not None:
            self.stored_objectives.forget(user_id)
        # Delete first: a crash between the two writes then leaves the contribution in (a
        # repeated forget finds no user and does nothing), never subtracted twice.
        self.store.delete(self.user_key(user_id))
        if user_state is not None:
            unlearned = self.policy.unlearn(self.global_state, user_state)
            if unlearned is not self.global_state:
                self.global_state = unlearned
                self._put(self._global_writes())
