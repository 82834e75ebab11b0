"""A small world whose policy values are known exactly, for the unbiasedness and coverage tests.

n items, slates of k; a Plackett-Luce ranking policy (scores log w + Gumbel noise: the top-k is
drawn item by item, each with probability proportional to its weight among those left), whose
prefix, joint and marginal probabilities are exact; clicks from a position-based model
(P(click at l) = exam[l] * rel[item]) or a cascade-dependent one (an item below a click is
clicked half as often), so that RIPS/SIPS hold in both and IIPS in the first only.

Loaded by path (tests are not a package): `world = load_world()`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from online.catalog import Catalog
from online.engine import Engine, EngineConfig
from online.events import Click, Impression, Item, RankRequest, ShownItem
from online.policies.arms import ArmStats, UniformRandom
from online.policies.base import RankContext, ScoreDraws
from online.state import InMemoryStore

START = datetime(2024, 1, 1, tzinfo=UTC)


class PlackettLuce(UniformRandom):
    """A fixed Plackett-Luce ranking over items "i0".."i{n-1}" with weights `weights` (its
    state is never read: learning changes nothing)."""

    name = "plackett_luce"

    def __init__(self, weights: Sequence[float], name: str = "plackett_luce") -> None:
        super().__init__()
        self.weights = np.asarray(weights, dtype=np.float64)
        self.name = name  # type: ignore[misc]

    def sample_scores(self, global_state: ArmStats, user_state: None, context: RankContext,
                      rng: np.random.Generator, n_draws: int) -> ScoreDraws:
        logw = np.log(self.weights[[int(i.removeprefix("i")) for i in context.item_ids]])
        draws = logw[None, :] + rng.gumbel(size=(n_draws, len(logw)))
        return ScoreDraws(draws, logw, np.zeros(len(logw)))


def slates_of(n: int, k: int) -> np.ndarray:
    """int64[S, k] every ordered slate of k distinct items out of n."""
    return np.array(list(itertools.permutations(range(n), k)), dtype=np.int64)


def pl_prefix(weights: np.ndarray, slates: np.ndarray) -> np.ndarray:
    """float64[S, k] exact Plackett-Luce prefix probabilities of each slate."""
    w = weights[slates]
    left = weights.sum() - np.concatenate([np.zeros((len(slates), 1)), np.cumsum(w, axis=1)[:, :-1]], axis=1)
    return np.cumprod(w / left, axis=1)


def mixed_prefix(weights: np.ndarray, slates: np.ndarray, epsilon: float) -> np.ndarray:
    """float64[S, k] prefix probabilities of the Plackett-Luce ranking mixed with a uniformly
    random one with probability epsilon (the support mix)."""
    n = len(weights)
    uniform = np.cumprod(1.0 / (n - np.arange(slates.shape[1])))
    return (1 - epsilon) * pl_prefix(weights, slates) + epsilon * uniform[None, :]


def marginals(joint: np.ndarray, slates: np.ndarray, n: int) -> np.ndarray:
    """float64[n, k] P(item i at position l) from the joint probabilities float64[S] of slates."""
    out = np.zeros((n, slates.shape[1]))
    for position in range(slates.shape[1]):
        np.add.at(out[:, position], slates[:, position], joint)
    return out


@dataclass(frozen=True)
class World:
    """n items with relevance rel float64[n]; examination exam float64[k]; `cascade`: an item
    below a click is clicked half as often."""

    rel: np.ndarray
    exam: np.ndarray
    cascade: bool = False

    @property
    def n(self) -> int:
        return len(self.rel)

    @property
    def k(self) -> int:
        return len(self.exam)

    def clicks(self, slates: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """float64[R, k] sampled clicks of slates int64[R, k]."""
        uniforms = rng.random(slates.shape)
        out = np.zeros(slates.shape)
        above = np.zeros(len(slates), dtype=bool)
        for position in range(slates.shape[1]):
            p = self.exam[position] * self.rel[slates[:, position]]
            if self.cascade:
                p = np.where(above, 0.5 * p, p)
            out[:, position] = uniforms[:, position] < p
            above |= out[:, position] > 0
        return out

    def slate_values(self, slates: np.ndarray) -> np.ndarray:
        """float64[S] expected clicks of each slate (exact)."""
        if self.cascade:
            return _cascade_values(self, slates)
        return (self.exam[None, :] * self.rel[slates]).sum(axis=1)


def exact_value(world: World, weights: np.ndarray, epsilon: float) -> float:
    """Expected clicks per slate of the mixed Plackett-Luce policy (exact, by enumeration)."""
    slates = slates_of(world.n, world.k)
    joint = mixed_prefix(weights, slates, epsilon)[:, -1]
    return float(joint @ world.slate_values(slates))


def _cascade_values(world: World, slates: np.ndarray) -> np.ndarray:
    """Exact expected clicks per slate under the cascade-dependent model (by enumerating the
    2^k click patterns)."""
    p = world.exam[None, :] * world.rel[slates]
    values = np.zeros(len(slates))
    for pattern in itertools.product([0, 1], repeat=world.k):
        probability = np.ones(len(slates))
        above = False
        for position, clicked in enumerate(pattern):
            q = p[:, position] * (0.5 if above else 1.0)
            probability *= q if clicked else 1 - q
            above = above or bool(clicked)
        values += probability * sum(pattern)
    return values


def items(n: int) -> list[Item]:
    return [Item(item_id=f"i{j}", fields={"title": f"item {j}"}, time=START) for j in range(n)]


def engine_log(world: World, policy: PlackettLuce, rounds: int, seed: int, n_draws: int,
               epsilon: float) -> list[Any]:
    """A log served by `policy` through `Engine.rank` (slates with their recorded propensities
    and candidates), impressions copying the slates, clicks from the world."""
    catalog = Catalog(dim=2)
    catalog_items = items(world.n)
    catalog.upsert(catalog_items, np.ones((world.n, 2), dtype=np.float32))
    engine = Engine(policy, InMemoryStore(), catalog, np.random.default_rng([seed, 1]),
                    config=EngineConfig(n_draws=n_draws, support_epsilon=epsilon))
    rng = np.random.default_rng([seed, 2])
    events: list[Any] = list(catalog_items)
    for r in range(rounds):
        time = START + timedelta(seconds=r)
        request = RankRequest(request_id=f"r{r}", user_id=f"u{r % 5}", k=world.k, time=time)
        slate = engine.rank(request)
        rows = np.array([[int(i.item_id.removeprefix("i")) for i in slate.items]])
        clicked = world.clicks(rows, rng)[0]
        events += [request, slate, Impression(
            event_id=f"e{r}", request_id=request.request_id, user_id=request.user_id, time=time,
            shown=tuple(ShownItem(item_id=i.item_id, position=i.position, propensity=i.propensity)
                        for i in slate.items))]
        events += [Click(event_id=f"c{r}-{p}", request_id=request.request_id, user_id=request.user_id,
                         item_id=slate.items[p].item_id, time=time) for p in np.flatnonzero(clicked).tolist()]
    return events
