"""The simulator loop: requests from Zipf-active users, clicks from a position-biased model.

    sim = Simulator(SimulatorConfig(seed=0))
    items = sim.initial_items()
    request, arrived = sim.next_request()      # advances the clock; arrived = new items
    outcome = sim.respond(request, slate)      # impression, sampled clicks, exact regret

True click probability of item i shown at position p (0 = top) to user u:
examination(p) * relevance(u, i) with examination(p) = 1 / (1 + p) ** eta and relevance
from `users.Population`. The oracle slate puts the candidates with the highest relevance
at the top in decreasing order, which maximises expected clicks because examination
decreases with position (rearrangement inequality). With satiation on (`config.satiation`,
users who value variety: see `satiation`), an item's probability is also multiplied by
a factor that falls with its likeness to the items above it, and the oracle is the better
of the relevance order and the greedy satiation-aware slate.

Randomness: the given Generator (or default_rng(config.seed)) is split into three
independent streams: the world (catalog, users), the request stream (users, candidates,
drift) and the clicks (and, with `shift_at`, the shifted tastes from a child of the world
stream: spawning draws no numbers, so the world is the same with and without it). The
request stream therefore does not depend on the slates a policy shows, so every policy run on
the same seed meets the same requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

from online.events import Click, Impression, Item, RankRequest, ShownItem, Slate
from online.simulation.catalog import item_id, make_catalog, value_columns
from online.simulation.config import SimulatorConfig
from online.simulation.paraphrase import paraphrase_catalog
from online.simulation.request_text import user_query
from online.simulation.satiation import greedy_slate, satiation_factors
from online.simulation.users import Population, sigmoid, user_id

_IMPRESSION_DELAY = timedelta(milliseconds=200)
"""Time from a request to its impression."""
_RECENT_REQUESTS = 1024
"""Candidate rows of this many recent requests are kept to answer `respond` quickly."""


@dataclass(frozen=True)
class SimulatedOutcome:
    """What the user did with a slate.

    impression: the slate's items with positions and propensities; clicks: sampled
    clicks (a few seconds after the impression); expected_clicks: sum of the shown items'
    true click probabilities; oracle_expected_clicks: the same for the oracle slate over
    the same candidates; item_clicked: per slate item, in slate order.
    """

    impression: Impression
    clicks: tuple[Click, ...]
    expected_clicks: float
    oracle_expected_clicks: float
    item_clicked: tuple[bool, ...]

    @property
    def regret(self) -> float:
        """oracle_expected_clicks - expected_clicks (>= 0 up to rounding)."""
        return self.oracle_expected_clicks - self.expected_clicks


def examination(positions: npt.ArrayLike, eta: float) -> npt.NDArray[np.float64]:
    """Probability float64[n] that a user looks at each position (0 = top): 1/(1+p)**eta."""
    p = np.asarray(positions, dtype=np.float64)
    if np.any(p < 0):
        raise ValueError("positions must be >= 0")
    out: npt.NDArray[np.float64] = (1.0 + p) ** -eta
    return out


class Simulator:
    """A seeded world of items and users answering slates with clicks; see module doc."""

    def __init__(self, config: SimulatorConfig, rng: np.random.Generator | None = None) -> None:
        self.config = config
        base = rng if rng is not None else np.random.default_rng(config.seed)
        # spawn(4)'s first three are spawn(3)'s: a world without request texts is unchanged
        world, self._request_rng, self._click_rng, self._text_rng = base.spawn(4)
        self.catalog = make_catalog(config.n_items, world, config.taste.quality_scale, config.taste.quality_in_text)
        self.population = Population(config.n_users, config.taste, world)
        self._shift: tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]] | None = None
        if config.shift_at is not None:
            shift_rng = world.spawn(1)[0]  # a child of the world stream: the same whatever else the seed spawns
            shifted = Population(config.n_users, config.taste, shift_rng)
            users = shift_rng.permutation(config.n_users)[: round(config.shift_share * config.n_users)]
            self._shift = users.astype(np.int64), shifted.weights[users]
        if config.paraphrase:  # texts only, from a stream of their own: the world is unchanged
            self.catalog = paraphrase_catalog(self.catalog, world.spawn(1)[0])
        self._columns = value_columns(self.catalog.codes)
        self._ids = tuple(item_id(row) for row in range(config.n_items))
        self._row_of = {item: row for row, item in enumerate(self._ids)}
        self._recent: dict[str, tuple[tuple[str, ...], npt.NDArray[np.int64]]] = {}
        self._top_examination = examination(np.arange(101), config.eta)
        self._user_of = {user_id(user): user for user in range(config.n_users)}
        self._release_at = config.release_schedule()
        self._released = config.n_initial_items
        self._step = 0
        self._events = 0

    @property
    def n_released(self) -> int:
        """Items released so far (rows 0 .. n_released-1)."""
        return self._released

    @property
    def step(self) -> int:
        """Requests issued so far."""
        return self._step

    def request_time(self, index: int) -> datetime:
        """Time of request `index` (UTC): start + (index + 1) * seconds_per_request."""
        return (self.config.start + timedelta(seconds=(index + 1) * self.config.seconds_per_request)).astimezone(UTC)

    def initial_items(self) -> list[Item]:
        """The items live at start, timestamped `config.start`."""
        start = self.config.start.astimezone(UTC)
        return [self.catalog.item(row, start) for row in range(self.config.n_initial_items)]

    def next_request(self) -> tuple[RankRequest, list[Item]]:
        """The next request, and the items released just before it (half a request earlier)."""
        index, rng = self._step, self._request_rng
        if index > 0 and index % self.config.drift_every == 0:
            self.population.drift(rng, self.config.drift_scale)
        if self._shift is not None and index == self.config.shift_at:
            self.population.replace_tastes(*self._shift)
        time = self.request_time(index)
        released = self.config.n_initial_items + int(np.searchsorted(self._release_at, index, side="right"))
        arrival = time - timedelta(seconds=self.config.seconds_per_request / 2)
        arrived = [self.catalog.item(row, arrival) for row in range(self._released, released)]
        self._released = released
        user = self.population.sample_user(rng)
        candidates = None
        if self.config.n_candidates is not None:
            rows = self._draw_candidates(rng, self.config.n_candidates)
            candidates = tuple(self._ids[row] for row in rows.tolist())
            self._recent[f"r{index:06d}"] = (candidates, rows)
            if len(self._recent) > _RECENT_REQUESTS:
                del self._recent[next(iter(self._recent))]
        text = None
        if self.config.request_text > 0 and self._text_rng.random() < self.config.request_text:
            text = user_query(self.population.weights[user], self._text_rng)
        request = RankRequest(
            request_id=f"r{index:06d}", user_id=user_id(user), scenario=self.config.scenario,
            candidates=candidates, k=self.config.k, time=time, context_text=text,
        )
        self._step += 1
        return request, arrived

    def _draw_candidates(self, rng: np.random.Generator, n: int) -> npt.NDArray[np.int64]:
        """Up to n distinct released rows int64[m] in random order, a fresh_fraction of
        them among the fresh_window most recently released new items."""
        n = min(n, self._released)
        fresh_pool = np.arange(max(self.config.n_initial_items, self._released - self.config.fresh_window),
                               self._released, dtype=np.int64)
        n_fresh = min(round(n * self.config.fresh_fraction), len(fresh_pool))
        fresh = rng.choice(fresh_pool, size=n_fresh, replace=False) if n_fresh else fresh_pool[:0]
        drawn = rng.choice(self._released, size=min(self._released, n + n_fresh), replace=False)
        rest = drawn[~np.isin(drawn, fresh)][: n - n_fresh]
        return rng.permutation(np.concatenate([fresh, rest]).astype(np.int64))

    def _examination(self, positions: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        if len(positions) and 0 <= positions.min() and positions.max() < len(self._top_examination):
            return self._top_examination[positions]
        return examination(positions, self.config.eta)

    def _user(self, user: str) -> int:
        if user not in self._user_of:
            raise ValueError(f"user_id: unknown user {user!r}")
        return self._user_of[user]

    def _rows(self, item_ids: Sequence[str], field_name: str = "item_ids") -> npt.NDArray[np.int64]:
        unknown = [i for i in item_ids if i not in self._row_of]
        if unknown:
            raise ValueError(f"{field_name}: unknown item ids {unknown[:5]}")
        return np.fromiter((self._row_of[i] for i in item_ids), dtype=np.int64, count=len(item_ids))

    def _relevance(self, user: int, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        logits = self.population.logits(user, self._columns[rows], self.catalog.quality[rows])
        return np.clip(sigmoid(logits), 1e-12, 1.0 - 1e-12)

    def relevance(self, user_id: str, item_ids: Sequence[str]) -> npt.NDArray[np.float64]:
        """float64[n] click probability of each item if examined, for `user_id`, now."""
        return self._relevance(self._user(user_id), self._rows(item_ids))

    def click_probabilities(
        self, user_id: str, item_ids: Sequence[str], positions: Sequence[int]
    ) -> npt.NDArray[np.float64]:
        """float64[n] true click probability, in (0, 1), of item_ids[j] shown at positions[j]
        (with satiation on, the items are one slate: each is satiated by those at smaller positions)."""
        if len(item_ids) != len(positions):
            raise ValueError(f"positions: {len(positions)} positions for {len(item_ids)} items")
        rows = self._rows(item_ids)
        at = np.asarray(positions, dtype=np.int64)
        return examination(at, self.config.eta) * self._relevance(self._user(user_id), rows) * self._satiation(rows, at)

    def _satiation(self, rows: npt.NDArray[np.int64], positions: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """float64[n] satiation factor of each slate item (all 1.0 with satiation off)."""
        if not self.config.satiation.active:
            return np.ones(len(rows))
        return satiation_factors(self.catalog.codes[rows], positions, self.config.satiation)

    def _candidate_rows(self, request: RankRequest) -> npt.NDArray[np.int64]:
        if request.candidates is None:
            return np.arange(self._released, dtype=np.int64)
        recent = self._recent.get(request.request_id)
        if recent is not None and recent[0] == request.candidates:
            return recent[1]
        return self._rows(request.candidates, "request.candidates")

    def _oracle(self, user: int, rows: npt.NDArray[np.int64], k: int) -> tuple[npt.NDArray[np.int64], float]:
        """The oracle's top min(k, n) rows (best first) and their expected clicks."""
        relevance = self._relevance(user, rows)
        order = np.argsort(-relevance, kind="stable")[:k]
        look = self._examination(np.arange(len(order)))
        if not self.config.satiation.active:
            return rows[order], float(look @ relevance[order])
        best, best_value = order, -1.0
        greedy = greedy_slate(relevance, self.catalog.codes[rows], k, self.config.satiation)
        for slate in (order, greedy):
            value = float(look @ (relevance[slate] * self._satiation(rows[slate], np.arange(len(slate)))))
            if value > best_value:
                best, best_value = slate, value
        return rows[best], best_value

    def oracle_slate(self, request: RankRequest) -> list[str]:
        """Item ids of the best slate for the request: its candidates (all released items
        when it has none) by decreasing relevance, at most request.k of them (with satiation
        on: that or the greedy satiation-aware slate, whichever has more expected clicks)."""
        rows, _ = self._oracle(self._user(request.user_id), self._candidate_rows(request), request.k)
        return [item_id(int(row)) for row in rows]

    def _check(self, request: RankRequest, slate: Slate, rows: npt.NDArray[np.int64]) -> None:
        if slate.request_id != request.request_id:
            raise ValueError(f"slate.request_id: {slate.request_id!r} does not answer {request.request_id!r}")
        if slate.user_id != request.user_id:
            raise ValueError(f"slate.user_id: {slate.user_id!r} != request.user_id {request.user_id!r}")
        if not slate.items or len(slate.items) > request.k:
            raise ValueError(f"slate.items: {len(slate.items)} items, need 1..{request.k}")
        if len({item.position for item in slate.items}) != len(slate.items):
            raise ValueError("slate.items: two items share a position")
        if len(set(rows.tolist())) != len(rows):
            raise ValueError("slate.items: an item appears twice")
        if request.candidates is not None:
            outside = set(rows.tolist()) - set(self._candidate_rows(request).tolist())
            if outside:
                raise ValueError(f"slate.items: {sorted(item_id(r) for r in outside)[:5]} are not candidates")
        elif int(rows.max()) >= self._released:
            raise ValueError("slate.items: an item that is not released yet")

    def _event_id(self) -> str:
        self._events += 1
        return f"e{self._events:08d}"

    def respond(self, request: RankRequest, slate: Slate) -> SimulatedOutcome:
        """The user's reaction to `slate` (an answer to `request`): clicks sampled from the
        true probabilities with the simulator's click stream, and exact expected clicks of
        the slate and of the oracle slate over the request's candidates."""
        rows = self._rows([item.item_id for item in slate.items], "slate.items")
        self._check(request, slate, rows)
        user = self._user(request.user_id)
        positions = np.array([item.position for item in slate.items], dtype=np.int64)
        probabilities = self._examination(positions) * self._relevance(user, rows)
        if self.config.satiation.active:
            probabilities = probabilities * self._satiation(rows, positions)
        clicked = self._click_rng.random(len(rows)) < probabilities
        _, oracle = self._oracle(user, self._candidate_rows(request), request.k)
        shown_at = request.time + _IMPRESSION_DELAY
        impression = Impression(
            event_id=self._event_id(), request_id=request.request_id, user_id=request.user_id,
            scenario=request.scenario, context=request.context, time=shown_at,
            shown=tuple(
                ShownItem(item_id=i.item_id, position=i.position, propensity=i.propensity) for i in slate.items
            ),
        )
        delays = 1.0 + self._click_rng.exponential(3.0, size=int(clicked.sum()))
        clicks = tuple(
            Click(
                event_id=self._event_id(), request_id=request.request_id, user_id=request.user_id,
                item_id=item.item_id, scenario=request.scenario,
                time=shown_at + timedelta(milliseconds=round(1000 * min(float(delay), 60.0))),
            )
            for item, delay in zip((i for i, c in zip(slate.items, clicked, strict=True) if c), delays, strict=True)
        )
        return SimulatedOutcome(
            impression, clicks, float(probabilities.sum()), oracle,
            tuple(bool(c) for c in clicked),
        )
