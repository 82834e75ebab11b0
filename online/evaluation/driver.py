"""Counterfactual evaluation of policies on a logged event stream, in log order.

    result = evaluate_log(events, ["linear_ts", "bernoulli_ts"], embed, item_dim=8)

Every policy gets its own `Engine` (in-memory state, one shared catalog) and walks the
log once, round by round (`online.evaluation.rounds`). For each logged round it is first
*scored*, then it *learns*:

1. score: the policy ranks the round's request (over the candidates the logging policy ranked,
   when the round's `Slate` records them) through `Engine.score`, the step `Engine.rank` serves
   with (m = n_draws Monte Carlo draws, the support mix as configured): the slate it would serve
   is its own (replay, ranking metrics), the share of draws putting each logged item at its
   logged position is its evaluation probability (IPS, SNIPS, DR, IIPS), the share agreeing with
   the logged slate's prefixes its prefix and joint probabilities (RIPS, SIPS;
   `RequestScores.slate_probabilities`), its posterior mean its predicted CTR (calibration).
   The reward model of DR (`reward_model.PositionCTRModel`, or with reward_model="river" the
   contextual `river_reward.RiverRewardModel`; shared by all policies, predict-then-update) gives
   q(item, position); DM refits one at the end
   (`direct_method`).
2. learn: the round's impression and clicks (learn_from="all"), or only the logged items
   its own slate reproduced (learn_from="matched", the replay rule), are folded in by
   `Engine.observe` every `learn_every` rounds (1 = strictly online).

Shortcuts, both exact in expectation: `uniform_random` uses its exact probabilities 1/n
(`exact_uniform`); a context-free policy (`context_free`: per-item policies that ignore
user and context) reuses one Monte Carlo matrix while its state and candidates are
unchanged (between learning batches), drawing only its slate afresh each round.

Slate objectives (online/objectives): a `PolicyVariant` evaluates a policy re-ranked by
`ObjectiveSettings` (and cut by `FilterSettings`): its Engine carries them, so `Engine.score`
filters the candidates and re-ranks every Monte Carlo draw as serving does, and the evaluation
probabilities are those of the whole randomised procedure and the estimators stay
unbiased. The objectives' memory (exposure windows for novelty and fairness, recent items
for filters) is fed with the variant's *own* slates (what it would have served) and the
round's logged clicks, at each learning batch (`Engine.observe_objectives`), as the serving
loop would; intra-list
diversity and the exposure Gini in the metrics are those of its own slates.

Fixed policies (`PolicyVariant(state=..., since=...)`, `freeze_after`): `online.evaluation.snapshots`;
a `ShardedSnapshot` state (the worker's partitions) gets an Engine per shard, and each request is
scored by its user's shard's Engine (one random generator for all of them); a `RoutedSnapshot`
(`PolicyVariant(ROUTED, ...)`) gets a `ScenarioRouter` per shard, and each request is scored by the
Engine its scenario routes to, as the worker serves it.
Estimates, their assessment and metrics come from `online.evaluation.summary`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from online.catalog import Catalog
from online.engine import Engine, RankError
from online.evaluation.config import DriverConfig
from online.evaluation.logged import UNKNOWN_ROW
from online.evaluation.reward_model import PositionCTRModel, RewardModel
from online.evaluation.river_reward import RiverRewardModel
from online.evaluation.round_terms import logged_side, policy_round
from online.evaluation.rounds import AnyEvent, Feedback, ItemBatch, LogCounts, LoggedRound, iter_log
from online.evaluation.scoring import RequestScores, score_request
from online.evaluation.snapshots import (
    ROUTED,
    OverlayStore,
    RoutedSnapshot,
    ShardedSnapshot,
    check_sharded_snapshot,
    check_snapshot,
    routed_request,
)
from online.evaluation.summary import EvaluationResult, summarise
from online.evaluation.traces import PolicyTrace, RoundLog
from online.events import Click, Impression, Item, RankRequest, ShownItem
from online.features import FeatureMap, ItemFeatures
from online.objectives import FilterSettings, Objectives, ObjectiveSettings
from online.policies import make_policy
from online.policies.base import Policy
from online.request_text import TextEmbed
from online.retrieval import Retriever
from online.scenarios import ScenarioRouter
from online.state import InMemoryStore, StateStore

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Embed = Callable[[Sequence[Item]], npt.NDArray[np.float32]]
"""Catalog items -> bandit vectors float32[n, d]."""

@dataclass(frozen=True)
class PolicyVariant:
    """A policy evaluated under slate objectives and filters (None: plain ranking), named
    `label` in the result (default: the policy's name); learning along the log (default), a
    fixed snapshot (`state`: a store of its learned state, shard: which global shard to read; or
    a `ShardedSnapshot`, each request ranked with its user's shard's state; never learns;
    evaluated on the rounds whose request is at or after `since`, the time it was taken: its
    state holds the rewards of earlier rounds), or frozen after learning on the first
    `freeze_after` evaluated rounds (evaluated on the rest): `online.evaluation.snapshots`.
    `PolicyVariant(ROUTED, state=RoutedSnapshot(...))`: the snapshot ranked as the worker routes
    scenarios (each its configured policy and objectives; none given here)."""

    policy: Policy[Any, Any] | str
    objectives: ObjectiveSettings | None = None
    filters: FilterSettings | None = None
    label: str | None = None
    state: StateStore | ShardedSnapshot | RoutedSnapshot | None = None
    shard: str = ""
    freeze_after: int | None = None
    since: datetime | None = None

    def __post_init__(self) -> None:
        if self.freeze_after is not None and (self.freeze_after < 1 or self.state is not None):
            raise ValueError("freeze_after: must be >= 1, and a snapshot (state) is fixed from the start")
        if self.since is not None and (self.state is None or self.since.tzinfo is None):
            raise ValueError("since: the time a snapshot (state) was taken, timezone-aware")
        if (self.policy == ROUTED) != isinstance(self.state, RoutedSnapshot) or (
                self.policy == ROUTED and (self.objectives is not None or self.filters is not None)):
            raise ValueError(f"policy {ROUTED!r}: the policy of a RoutedSnapshot state, which brings its scenarios' "
                             "policies and objectives")


@dataclass
class _PolicyRun:
    """A policy's engine (with its objectives, if any), its pending feedback, the pending own
    slates for the objectives' memory and the per-observation trace."""

    engine: Engine
    trace: PolicyTrace
    buffer: list[Impression | Click] = field(default_factory=list)
    own_buffer: list[Impression | Click] = field(default_factory=list)
    rounds_buffered: int = 0
    cache: dict[bytes, tuple[FloatArray, IntArray]] = field(default_factory=dict)
    matched_pairs: set[tuple[str, str]] = field(default_factory=set)
    freeze_after: int | None = None
    since: datetime | None = None
    shards: dict[str, Engine] | None = None
    shard_of: Callable[[str], str] | None = None
    shard_caches: dict[str, dict[bytes, tuple[FloatArray, IntArray]]] = field(default_factory=dict)
    routers: dict[str, ScenarioRouter] | None = None

    def engine_for(self, user_id: str, scenario: str) -> Engine:
        """The Engine that ranks for `user_id` in `scenario`: its shard's, for a sharded snapshot;
        the one its scenario routes to, for a routed one (RankError: a scenario not configured)."""
        if self.shard_of is None:
            return self.engine
        shard = self.shard_of(user_id)
        if self.routers is not None:
            routed = self._router(shard).engine_for(scenario)
            if routed is None:
                raise RankError(f"snapshot: scenario {scenario!r} is not configured")
            return routed
        engine = None if self.shards is None else self.shards.get(shard)
        if engine is None:
            raise RankError(f"snapshot: user {user_id!r} belongs to shard {shard!r}, which the snapshot lacks")
        return engine

    def _router(self, shard: str) -> ScenarioRouter:
        router = None if self.routers is None else self.routers.get(shard)
        if router is None:
            raise RankError(f"snapshot: shard {shard!r} is not in the snapshot")
        return router

    def scores(self, request: RankRequest, config: DriverConfig) -> RequestScores:
        """The policy's answer to a request (`scoring.score_request`: `Engine.score`, the serving
        step): the slate it would serve (support mix included) and the probabilities of all its
        draws; context-free policies reuse one Monte Carlo matrix between learning batches."""
        engine = self.engine_for(request.user_id, request.scenario)
        if self.routers is not None and self.shard_of is not None:
            request = routed_request(self._router(self.shard_of(request.user_id)), request)
        exact = config.exact_uniform and engine.ranks_uniformly(request)
        reuse = engine.policy.name in config.context_free and not exact
        cache = self.cache if self.shard_of is None else self.shard_caches.setdefault(engine.global_key, {})
        return score_request(engine, request, exact=exact, cache=cache if reuse else None)

    def waits(self, position: int, round_: LoggedRound) -> bool:
        """Whether the round at `position` among the evaluated rounds comes before this
        policy's evaluation starts (its learning prefix, or before its snapshot was taken)."""
        if self.freeze_after is not None:
            return position < self.freeze_after
        return self.since is not None and self.trace.evaluated_from == position and round_.request.time < self.since

    def learn(self, events: Sequence[Impression | Click], rounds: int, learn_every: int) -> None:
        self.buffer.extend(events)
        self.rounds_buffered += rounds
        if self.rounds_buffered >= learn_every:
            self.flush()

    def remember_own_slate(self, round_: LoggedRound, slate_ids: Sequence[str]) -> None:
        """Queue the slate this policy would have served (and the round's logged clicks) for
        the objectives' memory, applied with the next learning batch."""
        request = round_.request
        if self.engine_for(request.user_id, request.scenario).objectives is None or not slate_ids:
            return
        shown = tuple(ShownItem(item_id=item, position=p) for p, item in enumerate(slate_ids))
        self.own_buffer.append(Impression(
            event_id=f"{request.request_id}-own", request_id=request.request_id, user_id=request.user_id,
            scenario=request.scenario, shown=shown, time=request.time))
        self.own_buffer.extend(round_.clicks)

    def flush(self) -> None:
        """Learn what is buffered: the objectives' memory from the policy's own slates, the
        policy from the logged feedback."""
        if self.own_buffer:
            by_engine: dict[int, tuple[Engine, list[Impression | Click]]] = {}
            for event in self.own_buffer:
                engine = self.engine_for(event.user_id, event.scenario)
                by_engine.setdefault(id(engine), (engine, []))[1].append(event)
            for engine, events in by_engine.values():
                engine.observe_objectives(events)
            self.cache.clear()
            self.shard_caches.clear()
        self.own_buffer = []
        if self.buffer and not self.trace.frozen:
            result = self.engine.observe(self.buffer, feed_objectives=False)
            self.trace.learned_events += len(self.buffer) - len(result.rejected)
            self.trace.rejected_events += len(result.rejected)
            self.cache.clear()
        self.buffer = []
        self.rounds_buffered = 0


def _matched_feedback(
    round_: LoggedRound, slate_ids: Sequence[str], matched_pairs: set[tuple[str, str]]
) -> list[Impression | Click]:
    """The round's impression restricted to items the slate put at their logged position,
    and the clicks on them (learn_from="matched")."""
    impression = round_.impression
    if impression is None:
        return []
    kept = tuple(s for s in impression.shown if s.position < len(slate_ids) and slate_ids[s.position] == s.item_id)
    if not kept:
        return []
    names = {s.item_id for s in kept}
    matched_pairs.update((round_.request.request_id, name) for name in names)
    clicks = [c for c in round_.clicks if c.item_id in names]
    return [impression.model_copy(update={"shown": kept}), *clicks]


Entry = tuple[Policy[Any, Any] | None, str, Objectives | None, PolicyVariant]
"""(policy object, label, objectives or None, variant) of one evaluated policy; no policy object
for a routed snapshot (its configuration builds one per scenario group)."""


def _variants(policies: Sequence[Policy[Any, Any] | str | PolicyVariant]) -> list[Entry]:
    """An `Entry` per policy; labels must be distinct."""
    out: list[Entry] = []
    for entry in policies:
        variant = entry if isinstance(entry, PolicyVariant) else PolicyVariant(entry)
        if isinstance(variant.state, RoutedSnapshot):
            out.append((None, variant.label or ROUTED, None, variant))
            continue
        policy = make_policy(variant.policy) if isinstance(variant.policy, str) else variant.policy
        plain = variant.objectives is None and variant.filters is None
        out.append((policy, variant.label or policy.name,
                    None if plain else Objectives(variant.objectives, variant.filters), variant))
    names = [label for _, label, _, _ in out]
    if not out:
        raise ValueError("policies: must name at least one policy")
    if len(set(names)) != len(names):
        raise ValueError(f"policies: names (labels) must be distinct, got {names}")
    return out


def _run(index: int, entry: Entry, catalog: Catalog, features: FeatureMap, config: DriverConfig,
         retriever: Retriever | None, embed_text: TextEmbed | None) -> _PolicyRun:
    policy, label, objectives, variant = entry
    rng = np.random.default_rng([config.seed, index])
    if isinstance(variant.state, RoutedSnapshot):
        return _routed_run(label, variant.state, variant.since, rng, catalog, features, retriever, embed_text)
    assert policy is not None  # only a routed snapshot has none

    def engine_over(store: StateStore, shard: str) -> Engine:
        return Engine(policy, store, catalog, rng, features, config.engine, retriever, shard=shard,
                      objectives=objectives, embed_text=embed_text)

    trace = PolicyTrace(label, policy.version, frozen=variant.state is not None, snapshot=variant.state is not None)
    if isinstance(variant.state, ShardedSnapshot):
        stores = sorted(variant.state.stores.items())
        shards = {shard: engine_over(OverlayStore(store), shard) for shard, store in stores}
        check_sharded_snapshot(shards)
        return _PolicyRun(next(iter(shards.values())), trace, since=variant.since, shards=shards,
                          shard_of=variant.state.shard_of)
    engine = engine_over(InMemoryStore() if variant.state is None else OverlayStore(variant.state), variant.shard)
    if variant.state is not None:
        check_snapshot(engine)
    return _PolicyRun(engine, trace, freeze_after=variant.freeze_after, since=variant.since)


def _routed_run(label: str, snapshot: RoutedSnapshot, since: datetime | None, rng: np.random.Generator,
                catalog: Catalog, features: FeatureMap, retriever: Retriever | None,
                embed_text: TextEmbed | None) -> _PolicyRun:
    """A routed snapshot's run: the worker's engines of every shard (`RoutedSnapshot.routers`)."""
    routers = snapshot.routers(catalog, rng, features, retriever, embed_text)
    engines = next(iter(routers.values())).engines
    version = ",".join(f"{name}:{engines[name].policy.version}" for name in sorted(engines))
    return _PolicyRun(next(iter(engines.values())), PolicyTrace(label, version, frozen=True, snapshot=True),
                      since=since, shard_of=snapshot.shards()[1], routers=routers)


def evaluate_log(
    events: Iterable[AnyEvent],
    policies: Sequence[Policy[Any, Any] | str | PolicyVariant],
    embed: Embed,
    item_dim: int,
    *,
    features: FeatureMap | None = None,
    config: DriverConfig | None = None,
    progress: Callable[[int], None] | None = None,
    retriever_for: Callable[[Catalog], Retriever] | None = None,
    embed_text: TextEmbed | None = None,
) -> EvaluationResult:
    """Evaluate `policies` (objects, registered names, or `PolicyVariant`s with slate
    objectives) on a logged event stream.

    embed maps catalog items to float32[n, item_dim] vectors; features builds the bandit
    features (default `ItemFeatures`; `ContextCrossFeatures` for logs without user ids).
    progress(rounds) is called after every logged round; retriever_for(catalog) gives the engines'
    retrieval for requests without candidates (None: exact numpy). See the module doc.
    """
    config = config or DriverConfig()
    catalog = Catalog(dim=item_dim)
    feature_map = features or ItemFeatures()
    retriever = None if retriever_for is None else retriever_for(catalog)  # one per catalog, shared
    runs = [_run(index, entry, catalog, feature_map, config, retriever, embed_text)
            for index, entry in enumerate(_variants(policies))]
    model: RewardModel = (RiverRewardModel(lambda: catalog.vectors) if config.reward_model == "river"
                          else PositionCTRModel())
    log = RoundLog()
    counts = LogCounts()
    for step in iter_log(events, counts, config.max_rounds, config.attribution_s):
        if isinstance(step, ItemBatch):
            catalog.upsert(step.items, embed(step.items))
        elif isinstance(step, Feedback):
            for run in runs:
                event = step.event
                if config.learn_from == "all" or (
                    isinstance(event, Click) and (event.request_id, event.item_id) in run.matched_pairs
                ):
                    run.learn([event], 0, config.learn_every)
        else:
            _evaluate_round(step, runs, model, log, catalog, config)
            if progress is not None:
                progress(counts.rounds)
    for run in runs:
        run.flush()
    return summarise(log, [run.trace for run in runs], catalog, counts, config)


def _evaluate_round(
    round_: LoggedRound, runs: Sequence[_PolicyRun], model: RewardModel, log: RoundLog,
    catalog: Catalog, config: DriverConfig,
) -> None:
    side = logged_side(round_, catalog.index, model, config.uniform_log)
    if side is None:
        for run in runs:  # nothing shown: nothing to evaluate or learn
            run.learn([], 1, config.learn_every)
        return
    slate = side.slate
    log.add(round_.index, side.rows, side.positions, side.rewards, side.pscores, side.relevance, slate, side.support)
    request = round_.request
    if request.candidates is None and slate is not None and slate.candidates is not None:
        request = request.model_copy(update={"candidates": slate.candidates})  # rank what the logger ranked
    position = len(log.rounds) - 1  # this round's place among the evaluated rounds
    shown = len(side.rows)
    for run in runs:
        if run.waits(position, round_):  # still learning its prefix, or before its snapshot was taken
            run.trace.add_unranked(shown, None if slate is None or not slate.has_prefix else len(slate.rows),
                                   counted=False)
            run.trace.evaluated_from = position + 1
            run.learn(round_.feedback() if config.learn_from == "all" else [], 1, config.learn_every)
            continue
        if run.freeze_after is not None and not run.trace.frozen:
            run.flush()
            run.cache.clear()
            run.trace.frozen, run.trace.evaluated_from = True, position
        try:
            scores = run.scores(request, config)
        except RankError:
            run.trace.add_unranked(shown, None if slate is None or not slate.has_prefix else len(slate.rows))
            run.learn(round_.feedback() if config.learn_from == "all" else [], 1, config.learn_every)
            continue
        run.trace.add_round(policy_round(scores, side, model, config.reward_model))
        weighted = side.weighted
        run.trace.mass.add(scores.rows, scores.probs, weighted[weighted < scores.probs.shape[1]])
        slate_ids = [scores.item_ids[i] for i in scores.slate.tolist()]
        run.remember_own_slate(round_, slate_ids)
        feedback = (round_.feedback() if config.learn_from == "all"
                    else _matched_feedback(round_, slate_ids, run.matched_pairs))
        run.learn(feedback, 1, config.learn_every)
    known = side.rows != UNKNOWN_ROW
    if known.any():
        model.update(side.rows[known], side.positions[known], side.rewards[known], side.request)
