"""Fixed policies for the evaluation: a snapshot of learned state, or a policy frozen after
learning on a prefix of the log.

A learning policy evaluated on a log learns along it, so its estimate is an average over its
learning. A production policy is a state at a point in time; `PolicyVariant(state=store,
frozen=True)` evaluates that state and never learns (its Engine reads the snapshot's
"<policy>/global[/<shard>]" and "<policy>/user/<id>" keys through an `OverlayStore`, so the
objectives' memory it keeps while serving never writes to the snapshot);
`PolicyVariant(freeze_after=N)` learns on the log's first N evaluated rounds and is evaluated,
frozen, on the rest. A snapshot is any `StateStore`: the RocksDB directory `slatestream run
--state DIR` writes, or one exported from the worker's state changelog; or a `ShardedSnapshot`,
the worker's state as it keeps it, one store per Kafka partition with its own population state,
each request ranked with the state of its user's partition. `PolicyVariant(ROUTED,
state=RoutedSnapshot(config, state))` ranks each request as the worker routes it: with the
Engine of its scenario's policy (`online.scenarios.ScenarioRouter` over the configuration), each
reading its own keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from online.catalog import Catalog
from online.config import SlatestreamConfig
from online.engine import Engine
from online.events import RankRequest
from online.features import FeatureMap
from online.request_text import TextEmbed
from online.retrieval import Retriever
from online.scenarios import ScenarioRouter
from online.state import InMemoryStore, StateStore

ROUTED = "routed"
"""The policy of a `PolicyVariant` whose `RoutedSnapshot` state ranks each request with the Engine
its scenario routes to."""


@dataclass(frozen=True)
class ShardedSnapshot:
    """A policy's state kept in shards, as the worker keeps it: `stores` maps each shard (a Kafka
    partition, "0", "1", ...) to a store of its users' states and its own population state
    ("<policy>/global/<shard>"); `shard_of(user_id)` names the shard that serves a user (the
    partition its requests are keyed to). The evaluation ranks each request as the worker does:
    with the global and user state of the user's shard."""

    stores: Mapping[str, StateStore]
    shard_of: Callable[[str], str]

    def __post_init__(self) -> None:
        if not self.stores:
            raise ValueError("a sharded snapshot needs at least one shard")


@dataclass(frozen=True)
class RoutedSnapshot:
    """A snapshot ranked as the worker routes scenarios: `config` (the worker's configuration)
    names each scenario's policy, hyperparameters, engine settings and objectives; `state` (a
    store, or a `ShardedSnapshot`) holds every such policy's keys. A request is ranked by the
    Engine of its scenario's policy (its shard's, for a sharded state), with its scenario's slate
    size when the request names no k."""

    config: SlatestreamConfig
    state: StateStore | ShardedSnapshot

    def shards(self) -> tuple[dict[str, StateStore], Callable[[str], str]]:
        """(shard -> store, user id -> shard): one shard "" for a plain store."""
        if isinstance(self.state, ShardedSnapshot):
            return dict(self.state.stores), self.state.shard_of
        return {"": self.state}, lambda user_id: ""

    def routers(self, catalog: Catalog, rng: np.random.Generator, features: FeatureMap | None = None,
                retriever: Retriever | None = None, embed_text: TextEmbed | None = None) -> dict[str, ScenarioRouter]:
        """shard -> a ScenarioRouter over its overlaid store (the worker's engines of that shard, one
        per configured policy; `rng` shared by all), checked by `check_routed_snapshot`."""
        stores, _ = self.shards()
        routers = {shard: ScenarioRouter(self.config, OverlayStore(store), catalog, rng, features=features,
                                         retriever=retriever, shard=shard, embed_text=embed_text)
                   for shard, store in sorted(stores.items())}
        check_routed_snapshot(routers)
        return routers


def routed_request(router: ScenarioRouter, request: RankRequest) -> RankRequest:
    """The request with its scenario's slate size when it names no k (as the worker shapes it;
    its candidates are kept: the evaluation ranks what the logger ranked)."""
    settings = router.scenario_settings(request.scenario)
    if settings is None or "k" in request.model_fields_set:
        return request
    return request.model_copy(update={"k": settings.slate_size})


class OverlayStore:
    """A StateStore that reads `base` and writes to memory: what it writes shadows the base,
    what it deletes hides it; the base is never written."""

    def __init__(self, base: StateStore) -> None:
        # Its writes go to memory, all of a put_many at once; a global state is read the way the
        # base holds it: in parts where the base's put_many is atomic (a rocksdict directory),
        # whole where it is not (the worker's tables; online.engine.Engine._load_global)
        self.atomic_put_many = bool(getattr(base, "atomic_put_many", False))
        self.base = base
        self._top = InMemoryStore()
        self._deleted: set[str] = set()

    def get(self, key: str) -> bytes | None:
        if key in self._deleted:
            return None
        found = self._top.get(key)
        return found if found is not None else self.base.get(key)

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return [self.get(key) for key in keys]

    def put(self, key: str, value: bytes) -> None:
        self._deleted.discard(key)
        self._top.put(key, value)

    def put_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        for key, value in items:
            self.put(key, value)

    def delete(self, key: str) -> None:
        self._deleted.add(key)
        self._top.delete(key)

    def scan_prefix(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        seen: set[str] = set()
        for key, value in self._top.scan_prefix(prefix):
            seen.add(key)
            yield key, value
        for key, value in self.base.scan_prefix(prefix):
            if key not in seen and key not in self._deleted:
                yield key, value

    def close(self) -> None:
        """Closes the overlay only: the base belongs to its opener."""


def check_snapshot(engine: Engine) -> None:
    """ValueError when the snapshot holds no global state for the engine's policy, or state
    learned over features of another dimension than the engine's."""
    if engine.store.get(engine.global_key) is None:
        raise ValueError(f"snapshot: no {engine.global_key!r} key: not a state store of {engine.policy.name!r}")
    vector = engine.policy.user_vector(engine.global_state, None)
    if vector is not None and np.asarray(vector).shape[0] != engine.feature_dim:
        raise ValueError(f"snapshot: {engine.policy.name} was learned over {np.asarray(vector).shape[0]} features, "
                         f"this evaluation builds {engine.feature_dim}: use the encoder, dimension and configuration "
                         "it was learned with")


def check_sharded_snapshot(engines: Mapping[str, Engine]) -> None:
    """`check_snapshot` over the shards holding a global state (a partition that never learned
    ranks with the policy's prior, as the worker does); ValueError when none holds one."""
    present = [engine for engine in engines.values() if engine.store.get(engine.global_key) is not None]
    if not present:
        names = ", ".join(sorted(engines))
        policy = next(iter(engines.values())).policy.name
        raise ValueError(f"snapshot: no shard ({names}) holds a {policy!r} global state: not a state of {policy!r}")
    for engine in present:
        check_snapshot(engine)


def check_routed_snapshot(routers: Mapping[str, ScenarioRouter]) -> None:
    """`check_snapshot` over every Engine (of every shard) holding a global state (a policy or
    partition that never learned ranks with the prior, as the worker does); ValueError when none
    holds one."""
    engines = [engine for router in routers.values() for engine in router.engines.values()]
    present = [engine for engine in engines if engine.store.get(engine.global_key) is not None]
    if not present:
        policies = sorted({engine.policy.name for engine in engines})
        raise ValueError(f"snapshot: no shard holds a global state of the configured policies {policies}: not a "
                         "state of this configuration")
    for engine in present:
        check_snapshot(engine)
