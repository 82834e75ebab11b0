"""A log served on the simulator: an engine ranks every request, the simulator answers, the engine
learns the feedback; the events in log order, as `slatestream evaluate` reads a topic's log."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from online.engine import Engine
from online.events import Click, Impression, Item, RankRequest, Slate
from online.simulation.simulator import Simulator

EmbedItems = Callable[[Sequence[Item]], npt.NDArray[np.float32]]
"""Items -> float32[n, d] vectors (the catalog's embedding)."""


def served_log(simulator: Simulator, engine: Engine, embed: EmbedItems, horizon: int,
               on_slate: Callable[[RankRequest, Slate], None] | None = None) -> list[Any]:
    """`horizon` rounds of `engine` serving `simulator`: the initial items, then per round the items
    that arrived, the request, its slate (`on_slate` sees each), the impression and the clicks."""
    items = simulator.initial_items()
    engine.add_items(items, embed(items))
    events: list[Any] = list(items)
    for _ in range(horizon):
        request, arrived = simulator.next_request()
        if arrived:
            engine.add_items(arrived, embed(arrived))
            events += arrived
        slate = engine.rank(request)
        if on_slate is not None:
            on_slate(request, slate)
        outcome = simulator.respond(request, slate)
        feedback: list[Impression | Click] = [outcome.impression, *outcome.clicks]
        events += [request, slate, *feedback]
        engine.observe(feedback)
    return events
