"""Logged propensities are those of the full randomised procedure when re-ranking is on.

The state is fixed (no learning between calls), so each (item, position) has a fixed
probability p under the procedure sample -> filter -> boost/penalise -> re-rank. Over N
independent rank calls the served pair's frequency estimates p; the logged propensity of a
served pair is (1 + Binomial(m - 1, p)) / m (draw 0 is the served draw), so its mean over
the calls serving it, mapped by (m * mean - 1) / (m - 1), estimates p too. The support mix is
off here (its own test: tests/online/evaluation/test_driver_slates.py).
"""

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pytest

from online.engine import Engine
from online.events import Click, Impression, RankRequest, ShownItem
from online.objectives import Objectives, ObjectiveSettings
from online.slates import top_k

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def trained(engine: Engine) -> Engine:
    """A user who clicked items of cluster 0 (rows 0..7) a few times: a peaked posterior."""
    events: list[Impression | Click] = []
    for n in range(6):
        shown = (f"i{n % 8}", f"i{8 + n}", f"i{16 + n}")
        events.append(Impression(event_id=f"e{n}", request_id=f"q{n}", user_id="u", time=T0,
                                 shown=tuple(ShownItem(item_id=i, position=p) for p, i in enumerate(shown))))
        events.append(Click(event_id=f"c{n}", request_id=f"q{n}", user_id="u", item_id=shown[0], time=T0))
    engine.observe(events)
    return engine


@pytest.mark.parametrize(
    ("method", "position_power", "from_position"),
    [("mmr", 0.0, 0), ("dpp", 0.0, 0), ("mmr", 1.0, 2), ("dpp", 1.0, 0), ("ild", 1.0, 0)],
)
def test_served_frequencies_match_logged_propensities_with_diversity_on(
    make_engine: Callable[..., Engine], method: str, position_power: float, from_position: int
) -> None:
    m, trials, k = 16, 2000, 3
    settings = ObjectiveSettings(diversity=1.5, diversity_method=method, novelty=0.3,  # type: ignore[arg-type]
                                 diversity_position_power=position_power, diversity_from_position=from_position)
    engine = trained(make_engine(Objectives(settings), seed=7, n_draws=m, support_epsilon=0.0))
    request = RankRequest(request_id="r", user_id="u", k=k, time=T0)
    served: dict[tuple[str, int], int] = defaultdict(int)
    logged: dict[tuple[str, int], list[float]] = defaultdict(list)
    for _ in range(trials):
        for item in engine.rank(request).items:
            served[item.item_id, item.position] += 1
            logged[item.item_id, item.position].append(item.propensity)
    frequent = [pair for pair, count in served.items() if count >= 150]
    assert len(frequent) >= 3
    for pair in frequent:
        frequency = served[pair] / trials
        estimate = (m * np.mean(logged[pair]) - 1) / (m - 1)
        # standard errors: the frequency's, plus the mean logged propensity's (scaled)
        p = frequency
        se = np.sqrt(p * (1 - p) / trials + (m / (m - 1)) ** 2 * (m - 1) * p * (1 - p) / m**2 / served[pair])
        assert abs(frequency - estimate) < 4 * se + 1e-9, (pair, frequency, estimate, se)


def test_plain_top_k_propensities_would_be_wrong_here(make_engine: Callable[..., Engine]) -> None:
    """The fixture makes re-ranking matter: the slate's first two positions of the plain
    top-k and of MMR differ in most draws, so the test above can fail."""
    m, k = 64, 3
    engine = trained(make_engine(Objectives(ObjectiveSettings(diversity=1.5)), seed=7, n_draws=m))
    request = RankRequest(request_id="r", user_id="u", k=k, time=T0)
    rows = engine.candidate_rows(request, engine.load_user("u"))
    context_features = engine.features.transform(engine.catalog.vectors[rows], None)
    from online.policies.base import RankContext

    context = RankContext("u", "default", engine.catalog.ids_of(rows), context_features, T0.timestamp())
    draws = engine.policy.sample_scores(engine.global_state, engine.load_user("u"), context, engine.rng, m)
    assert engine.objectives is not None
    reranked = engine.objectives.rank(request, rows, draws, engine.catalog).ranked
    plain = top_k(draws.draws, k)
    assert (reranked[:, 1] != plain[:, 1]).mean() > 0.5
