"""Shadow policies: policies that learn from the served traffic and are scored on it, never served.

    shadows = ShadowEngines(config, store, catalog, seed=(0, 3), shard="3")
    for shadow in shadows.covering("feed"):
        scores = score_shadow(shadow.engine, request, slate)      # online.evaluation.live
    shadows.forget("u1")

Each configured shadow (`online.config.ShadowConfig`) gets its own `Engine` over the same store,
its keys under `shadow/<name>/` (`PrefixedStore`): `shadow/<name>/<policy>/global/<shard>`,
`shadow/<name>/<policy>/user/<id>`, `shadow/<name>/<policy>/embedding`. So its state is kept,
changelogged and recovered like the served policies' and never touches theirs; and it draws from
its own random generator, so what is served draws exactly what it would without shadows. A
shadow ranks without the scenarios' objectives and filters (plain ranking of the logged
candidates).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from online.catalog import Catalog
from online.config import DERIVED_PARAMS, ShadowConfig, SlatestreamConfig
from online.engine import Engine
from online.features import FeatureMap
from online.policies import make_policy
from online.policies.base import Policy
from online.request_text import TextEmbed
from online.state import StateStore

SHADOW_SEED = 0x5AD0
"""Mixed into each shadow's generator seed: never the served engines' stream."""


def shadow_prefix(name: str) -> str:
    """The key prefix of a shadow's state, "shadow/<name>/"."""
    return f"shadow/{name}/"


class PrefixedStore:
    """A StateStore that keeps every key of `store` it is given under `prefix` (reads, writes and
    scans see the keys without it)."""

    def __init__(self, store: StateStore, prefix: str) -> None:
        if not prefix:
            raise ValueError("prefix: must not be empty")
        self.store = store
        self.prefix = prefix

    def get(self, key: str) -> bytes | None:
        return self.store.get(self.prefix + key)

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return self.store.get_many([self.prefix + key for key in keys])

    def put(self, key: str, value: bytes) -> None:
        self.store.put(self.prefix + key, value)

    def put_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        self.store.put_many((self.prefix + key, value) for key, value in items)

    def delete(self, key: str) -> None:
        self.store.delete(self.prefix + key)

    def scan_prefix(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        cut = len(self.prefix)
        for key, value in self.store.scan_prefix(self.prefix + prefix):
            yield key[cut:], value

    def close(self) -> None:
        """Nothing to release: the wrapped store belongs to its owner."""


def shadow_scenarios(config: SlatestreamConfig, shadow: ShadowConfig) -> tuple[str, ...]:
    """The declared scenarios a shadow covers (its own list, else every declared scenario)."""
    return shadow.scenarios if shadow.scenarios is not None else tuple(config.scenarios)


def shadow_policy(config: SlatestreamConfig, shadow: ShadowConfig) -> Policy[Any, Any]:
    """A new policy object for a shadow; linear TS covering two or more scenarios learns their
    offsets (as a served policy shared by them does, online.config)."""
    derived: dict[str, Any] = {}
    if "scenario_offsets" in DERIVED_PARAMS.get(shadow.policy.name, ()):
        covered = shadow_scenarios(config, shadow)
        derived["scenario_offsets"] = tuple(sorted(covered)) if len(covered) > 1 else ()
    return make_policy(shadow.policy.name, shadow.policy.hyperparameters(**derived))


@dataclass(frozen=True)
class Shadow:
    """One shadow in one shard: its name, engine, the declared scenarios it covers and its key
    prefix in the shard's store."""

    name: str
    engine: Engine
    scenarios: frozenset[str]
    prefix: str

    def user_keys(self, user_id: str) -> list[str]:
        """The store keys (prefixed) holding the user's state in this shadow."""
        return [self.prefix + key for key in self.engine.user_keys(user_id)]


class ShadowEngines:
    """The configured shadows of one shard (a worker partition) over its store and the shared
    catalog; see the module doc. seed: the shard's generator seed (e.g. (worker seed, partition))."""

    def __init__(self, config: SlatestreamConfig, store: StateStore, catalog: Catalog, seed: Sequence[int],
                 shard: str = "", features: FeatureMap | None = None,
                 embedding_version: Callable[[], str] | None = None, embed_text: TextEmbed | None = None) -> None:
        self.config = config
        self.shadows: list[Shadow] = []
        for index, spec in enumerate(config.shadows):
            prefix = shadow_prefix(spec.name)
            rng = np.random.default_rng([*seed, SHADOW_SEED, index])
            engine = Engine(shadow_policy(config, spec), PrefixedStore(store, prefix), catalog, rng, features,
                            config.engine, shard=shard, embedding_version=embedding_version, embed_text=embed_text)
            self.shadows.append(Shadow(spec.name, engine, frozenset(shadow_scenarios(config, spec)), prefix))

    def covering(self, scenario: str) -> list[Shadow]:
        """The shadows covering requests and feedback of `scenario` (resolved through the
        fallback; none for a scenario that is not configured)."""
        try:
            declared = self.config.resolve(scenario)
        except KeyError:
            return []
        return [shadow for shadow in self.shadows if declared in shadow.scenarios]

    def forget(self, user_id: str) -> list[str]:
        """Remove the user's state from every shadow (right to be forgotten); returns the store
        keys that held it, for the caller to acknowledge (tombstones)."""
        keys: list[str] = []
        for shadow in self.shadows:
            shadow.engine.forget(user_id)
            keys.extend(shadow.user_keys(user_id))
        return keys
