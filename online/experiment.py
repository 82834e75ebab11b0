"""Closed-loop experiments: a policy ranks for the simulator, learns from its feedback.

`run_policy` drives one policy through the simulator with the same core calls as the
streaming worker (Engine.rank / Engine.observe), learning in batches of `learn_every`
requests (the feedback delay), and records per-request outcomes. Every policy is run on
a simulator built from the same seed, so all face the same users and catalog. Slate
objectives (diversity, novelty, fairness, filters: online/objectives) are optional; the
summary reports CTR next to intra-list diversity and the exposure Gini over the catalog.

Diversity (MMR/DPP similarity and intra-list diversity) is measured on the bandit vectors,
or, given `diversity_embed`, on a second embedding of the items (e.g. the raw sentence
embedding the bandit vectors are a centred projection of), carried by the catalog.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from online.catalog import Catalog
from online.engine import Engine, EngineConfig
from online.evaluation.metrics import gini, intra_list_diversity
from online.events import Click, Impression, Item
from online.objectives import FilterSettings, Objectives, ObjectiveSettings
from online.policies.base import Policy
from online.request_text import TextEmbed
from online.retrieval import Retriever
from online.simulation import Simulator
from online.state import StateStore

Embed = Callable[[Sequence[Item]], npt.NDArray[np.float32]]
"""Item texts -> bandit vectors float32[n, d] (an encoder plus a fitted projection), or, as
`diversity_embed`, -> diversity embeddings float32[n, e]."""


@dataclass(frozen=True)
class ExperimentConfig:
    """n_requests per policy; learn_every: requests between learning batches; engine: the
    Engine's settings (Monte Carlo draws per slate, caches); n_draws: when set, overrides
    `engine.n_draws`; new_item_impressions: an item counts as new during its first this-many
    impressions."""

    n_requests: int = 5000
    learn_every: int = 20
    n_draws: int | None = None
    new_item_impressions: int = 50
    engine: EngineConfig = field(default_factory=EngineConfig)

    def __post_init__(self) -> None:
        draws = 1 if self.n_draws is None else self.n_draws
        if min(self.n_requests, self.learn_every, draws, self.new_item_impressions) < 1:
            raise ValueError(f"invalid ExperimentConfig: {self}")

    def engine_config(self) -> EngineConfig:
        """The Engine's settings, with `n_draws` applied."""
        if self.n_draws is None:
            return self.engine
        return self.engine.model_copy(update={"n_draws": self.n_draws})


@dataclass(frozen=True)
class PolicyRun:
    """Per-request outcomes of one policy (arrays of length T = requests served)."""

    policy: str
    version: str
    clicks: npt.NDArray[np.float64]
    shown: npt.NDArray[np.int64]
    expected_clicks: npt.NDArray[np.float64]
    oracle_clicks: npt.NDArray[np.float64]
    new_shown: npt.NDArray[np.int64]
    new_clicks: npt.NDArray[np.float64]
    diversity: npt.NDArray[np.float64]
    elapsed_s: float
    exposure: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    """float64[R] impressions per catalog row over the run (every item in the catalog at
    the end, never-shown items 0)."""
    bandit_diversity: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    """float64[T] per-request ILD over the bandit vectors when `diversity` was measured on
    separate diversity embeddings; empty otherwise (then `diversity` is over the bandit vectors)."""

    @property
    def regret(self) -> npt.NDArray[np.float64]:
        """float64[T] cumulative expected regret (oracle minus policy expected clicks)."""
        return np.cumsum(self.oracle_clicks - self.expected_clicks)

    def summary(self) -> dict[str, Any]:
        """CTR per shown item, expected CTR, oracle CTR, total regret, new-item CTR,
        mean intra-list diversity (in the diversity space) and over the bandit vectors,
        exposure Gini over the catalog's items, requests per second."""
        shown = max(int(self.shown.sum()), 1)
        bandit = self.bandit_diversity if len(self.bandit_diversity) else self.diversity
        return {
            "policy": self.policy,
            "version": self.version,
            "requests": len(self.clicks),
            "ctr": float(self.clicks.sum() / shown),
            "expected_ctr": float(self.expected_clicks.sum() / shown),
            "oracle_ctr": float(self.oracle_clicks.sum() / shown),
            "regret": float(self.regret[-1]) if len(self.clicks) else 0.0,
            "new_item_ctr": float(self.new_clicks.sum() / max(int(self.new_shown.sum()), 1)),
            "new_item_impressions": int(self.new_shown.sum()),
            "diversity": float(self.diversity.mean()) if len(self.diversity) else 0.0,
            "bandit_diversity": float(bandit.mean()) if len(bandit) else 0.0,
            "exposure_gini": gini(self.exposure) if self.exposure.sum() > 0 else float("nan"),
            "requests_per_s": len(self.clicks) / max(self.elapsed_s, 1e-9),
        }


def run_policy(
    policy: Policy[Any, Any],
    simulator: Simulator,
    embed: Embed,
    store: StateStore,
    dim: int,
    config: ExperimentConfig,
    rng: np.random.Generator,
    progress: Callable[[int], None] | None = None,
    objectives: ObjectiveSettings | None = None,
    filters: FilterSettings | None = None,
    diversity_embed: Embed | None = None,
    retriever_for: Callable[[Catalog], Retriever] | None = None,
    embed_text: TextEmbed | None = None,
) -> PolicyRun:
    """Serve config.n_requests simulator requests with `policy`; see module doc.
    objectives / filters: slate objectives applied by the engine (None for both: none);
    diversity_embed: items -> float[n, e] embeddings that MMR/DPP and the ILD use instead
    of the bandit vectors (None: the bandit vectors); retriever_for: the Engine's retrieval over
    the run's catalog (None: exact numpy retrieval); embed_text: request texts -> item-space
    vectors (None: texts unused)."""
    slate_objectives = None if objectives is None and filters is None else Objectives(objectives, filters)
    initial = simulator.initial_items()
    initial_diversity = None if diversity_embed is None else diversity_embed(initial)
    catalog = Catalog(dim=dim, diversity_dim=None if initial_diversity is None else initial_diversity.shape[1])
    engine = Engine(policy, store, catalog, rng, config=config.engine_config(),
                    retriever=None if retriever_for is None else retriever_for(catalog), embed_text=embed_text,
                    objectives=slate_objectives)

    def add_items(items: Sequence[Item], diversity_vectors: npt.NDArray[np.float32] | None) -> None:
        if diversity_vectors is None:
            engine.add_items(items, embed(items))
        else:  # Engine.add_items is this upsert without the diversity embeddings
            catalog.upsert(items, embed(items), diversity_vectors=diversity_vectors)

    add_items(initial, initial_diversity)
    impressions_of: dict[str, int] = {}
    pending: list[Impression | Click] = []
    t = config.n_requests
    clicks, expected, oracle = np.zeros(t), np.zeros(t), np.zeros(t)
    shown, new_shown = np.zeros(t, dtype=np.int64), np.zeros(t, dtype=np.int64)
    new_clicks, diversity = np.zeros(t), np.zeros(t)
    bandit_diversity = np.zeros(t if diversity_embed is not None else 0)
    started = time.perf_counter()
    for step in range(t):
        request, arrived = simulator.next_request()
        if arrived:
            add_items(arrived, None if diversity_embed is None else diversity_embed(arrived))
        slate = engine.rank(request)
        outcome = simulator.respond(request, slate)
        ids = [item.item_id for item in slate.items]
        clicked = np.asarray(outcome.item_clicked, dtype=np.float64)
        fresh = np.array([impressions_of.get(i, 0) < config.new_item_impressions for i in ids])
        for item_id in ids:
            impressions_of[item_id] = impressions_of.get(item_id, 0) + 1
        clicks[step], shown[step] = clicked.sum(), len(ids)
        expected[step], oracle[step] = outcome.expected_clicks, outcome.oracle_expected_clicks
        new_shown[step], new_clicks[step] = int(fresh.sum()), float(clicked[fresh].sum())
        if len(ids) > 1:
            rows = catalog.rows(ids)
            diversity[step] = intra_list_diversity([range(len(ids))], catalog.diversity_vectors[rows])
            if diversity_embed is not None:
                bandit_diversity[step] = intra_list_diversity([range(len(ids))], catalog.vectors[rows])
        pending.append(outcome.impression)
        pending.extend(outcome.clicks)
        if (step + 1) % config.learn_every == 0 or step + 1 == t:
            engine.observe(pending)
            pending = []
            if progress is not None:
                progress(step + 1)
    elapsed = time.perf_counter() - started
    exposure = np.zeros(len(catalog))
    exposure[catalog.rows(list(impressions_of))] = list(impressions_of.values())
    return PolicyRun(
        policy.name, policy.version, clicks, shown, expected, oracle, new_shown, new_clicks,
        diversity, elapsed, exposure, bandit_diversity,
    )
