"""A live leaderboard window on the simulator: a served policy, shadows scored beside it on every
served slate, every engine learning all feedback, as the worker runs them (streams.worker.shadows).
What `bench/leaderboard_verdicts.py` and the leaderboard's tests read verdicts from."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from online.catalog import Catalog
from online.config import LeaderboardConfig
from online.engine import Engine, RankError
from online.evaluation.live import ClosedRound, LiveWindow, score_shadow
from online.evaluation.scoring import RequestScores
from online.events import Click, Impression, RankRequest, Slate
from online.policies import make_policy
from online.simulation.config import SimulatorConfig
from online.simulation.simulator import Simulator
from online.state import InMemoryStore

Embed = Callable[[Sequence[str]], npt.NDArray[np.float32]]
"""Item texts -> float32[n, d] vectors (the catalog's embedding)."""


def shadow_window_rounds(served: str, shadows: Mapping[str, str], world: SimulatorConfig, embed: Embed, dim: int,
                         settings: LeaderboardConfig) -> list[ClosedRound]:
    """The closed rounds of a window after `world.horizon` requests: `served` (a policy name) ranks
    each, every shadow (label -> policy name) is scored on the served slate (None when it cannot
    rank the request), the simulator answers, and every engine learns the feedback. Seeds: the
    served engine [world.seed, 1], shadow i [world.seed, 2, i]."""
    simulator, catalog = Simulator(world), Catalog(dim=dim)
    engine = Engine(make_policy(served), InMemoryStore(), catalog, np.random.default_rng([world.seed, 1]))
    engines = {label: Engine(make_policy(name), InMemoryStore(), catalog, np.random.default_rng([world.seed, 2, i]))
               for i, (label, name) in enumerate(shadows.items())}
    items = simulator.initial_items()
    catalog.upsert(items, embed([i.text() for i in items]))
    window = LiveWindow(list(shadows), settings)
    for _ in range(world.horizon):
        request, arrived = simulator.next_request()
        if arrived:
            catalog.upsert(arrived, embed([i.text() for i in arrived]))
        slate = engine.rank(request)
        window.open(request, slate, catalog.index, {label: _scored(shadow, request, slate)
                                                    for label, shadow in engines.items()})
        outcome = simulator.respond(request, slate)
        feedback: list[Impression | Click] = [outcome.impression, *outcome.clicks]
        for event in feedback:
            window.observe(event)
        window.close_due()
        for learner in [engine, *engines.values()]:
            learner.observe(feedback)
    return window.rounds()


def _scored(shadow: Engine, request: RankRequest, slate: Slate) -> RequestScores | None:
    """`score_shadow`, or None when the shadow cannot rank the request."""
    try:
        return score_shadow(shadow, request, slate)
    except RankError:
        return None
