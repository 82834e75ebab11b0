"""Serving every configured scenario: one Engine per policy, requests and feedback routed by
scenario, each request shaped by its scenario's slate size and candidate source.

    router = ScenarioRouter(load_config("deploy/slatestream.toml"), store, catalog, rng)
    slate = router.rank(request)          # RankError for a scenario that is not configured
    result = router.observe(events)       # impressions and clicks, any scenarios mixed

Scenarios naming the same policy go to the same Engine, so they share its global state and
every user's state (see online.config); the scenario travels in every event, which is how
linear Thompson sampling learns its per-scenario offsets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from online.catalog import Catalog
from online.config import ScenarioConfig, SlatestreamConfig
from online.engine import Engine, ObserveResult, RankError
from online.events import Item, RankRequest, Slate
from online.features import FeatureMap
from online.request_text import TextEmbed
from online.retrieval import Retriever
from online.state import StateStore
from online.wire import FeedbackEvent


class ScenarioRouter:
    """Engines by policy name over one store and one catalog; see module doc. `shard`
    (e.g. a Kafka partition) gives every Engine its own global state (see Engine)."""

    def __init__(
        self,
        config: SlatestreamConfig,
        store: StateStore,
        catalog: Catalog,
        rng: np.random.Generator,
        features: FeatureMap | None = None,
        retriever: Retriever | None = None,
        shard: str = "",
        embedding_version: Callable[[], str] | None = None,
        embed_text: TextEmbed | None = None,
    ) -> None:
        self.config = config
        self.catalog = catalog
        self.engines: dict[str, Engine] = {}
        for policy_name, scenarios in config.policy_groups().items():
            parts = config.engine_parts(scenarios[0])
            self.engines[policy_name] = Engine(
                parts.policy, store, catalog, rng, features, parts.engine_config, retriever,
                objectives=parts.objectives, shard=shard, embedding_version=embedding_version, embed_text=embed_text,
            )

    def scenario_settings(self, scenario: str) -> ScenarioConfig | None:
        """The settings serving `scenario` (its own or the fallback's), None if not configured."""
        try:
            return self.config.scenarios[self.config.resolve(scenario)]
        except KeyError:
            return None

    def engine_for(self, scenario: str) -> Engine | None:
        """The Engine serving `scenario`, None if the scenario is not configured."""
        settings = self.scenario_settings(scenario)
        return None if settings is None else self.engines[settings.policy.name]

    def add_items(self, items: Sequence[Item], vectors: npt.NDArray[np.float32]) -> None:
        """Add or update catalog items (one catalog shared by every Engine)."""
        self.catalog.upsert(items, vectors)

    def shape(self, request: RankRequest) -> RankRequest:
        """The request as its scenario serves it: k from slate_size unless the request sets
        k; candidates dropped for "retrieval"; RankError for "request" without candidates or
        for a scenario that is not configured."""
        settings = self.scenario_settings(request.scenario)
        if settings is None:
            raise RankError(f"request {request.request_id}: scenario {request.scenario!r} is not configured "
                            f"(declared: {', '.join(self.config.scenarios)})")
        update: dict[str, Any] = {}
        if "k" not in request.model_fields_set:
            update["k"] = settings.slate_size
        if settings.candidates == "request" and request.candidates is None:
            raise RankError(f"request {request.request_id}: scenario {request.scenario!r} takes its candidates "
                            "from the request, and the request brings none")
        if settings.candidates == "retrieval" and request.candidates is not None:
            update["candidates"] = None
        return request.model_copy(update=update) if update else request

    def rank(self, request: RankRequest) -> Slate:
        """The slate for a request, from the Engine of its scenario's policy."""
        shaped = self.shape(request)  # RankError for a scenario that is not configured
        engine = self.engine_for(request.scenario)
        assert engine is not None
        return engine.rank(shaped)

    def observe(self, events: Sequence[FeedbackEvent]) -> ObserveResult:
        """Learn from impressions and clicks: each Engine gets its scenarios' events, in log
        order. Events of a scenario that is not configured are rejected with the reason."""
        routed: dict[str, list[FeedbackEvent]] = {}
        rejected: list[tuple[FeedbackEvent, str]] = []
        for event in events:
            settings = self.scenario_settings(event.scenario)
            if settings is None:
                rejected.append((event, f"unknown scenario {event.scenario!r} (declared: "
                                        f"{', '.join(self.config.scenarios)})"))
            else:
                routed.setdefault(settings.policy.name, []).append(event)
        learned = 0
        for policy_name, batch in routed.items():
            result = self.engines[policy_name].observe(batch)
            learned += result.learned_rows
            rejected.extend(result.rejected)
        return ObserveResult(learned, tuple(rejected))

    def forget(self, user_id: str) -> None:
        """Remove a user's state from every Engine (right to be forgotten)."""
        for engine in self.engines.values():
            engine.forget(user_id)
