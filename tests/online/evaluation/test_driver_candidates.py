"""A replayed live run is evaluated over the candidates the logging policy ranked.

The logger (linear TS) retrieves 5 of 50 items per request (requests name no candidates) and
serves a uniformly random ranking of them (support_epsilon = 1: exact propensities 1/5). Its
slates record the candidates, so `uniform_random` evaluated on the log ranks the same 5 and
every weight is exactly 1: IPS and SNIPS equal the logged CTR. Without the slates in the log it
ranks all 50 items and IPS falls to a tenth (the issue's "IPS ~0" on a replayed live run).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from online.catalog import Catalog
from online.engine import Engine, EngineConfig
from online.evaluation.driver import DriverConfig, evaluate_log
from online.events import Click, Impression, Item, RankRequest, ShownItem, Slate
from online.policies.linear_ts import LinearThompsonSampling
from online.state import InMemoryStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)
N_ITEMS, RETRIEVED, ROUNDS = 50, 5, 200
VECTORS = np.random.default_rng(0).standard_normal((N_ITEMS, 4)).astype(np.float32)


def embed(items: Any) -> np.ndarray:
    return VECTORS[[int(i.item_id[1:]) for i in items]]


def live_log() -> list[Any]:
    catalog = Catalog(dim=4)
    items = [Item(item_id=f"i{j}", fields={"t": str(j)}, time=T0) for j in range(N_ITEMS)]
    engine = Engine(LinearThompsonSampling(), InMemoryStore(), catalog, np.random.default_rng(1),
                    config=EngineConfig(n_draws=16, retrieval_size=RETRIEVED, support_epsilon=1.0))
    engine.add_items(items, embed(items))
    rng = np.random.default_rng(2)
    events: list[Any] = list(items)
    for r in range(ROUNDS):
        time = T0 + timedelta(seconds=r)
        request = RankRequest(request_id=f"r{r}", user_id=f"u{r % 4}", k=2, time=time)
        slate = engine.rank(request)
        impression = Impression(event_id=f"e{r}", request_id=request.request_id, user_id=request.user_id, time=time,
                                shown=tuple(ShownItem(item_id=i.item_id, position=i.position, propensity=i.propensity)
                                            for i in slate.items))
        clicks = [Click(event_id=f"c{r}{i.position}", request_id=request.request_id, user_id=request.user_id,
                        item_id=i.item_id, time=time) for i in slate.items if rng.random() < 0.3]
        engine.observe([impression, *clicks])
        events += [request, slate, impression, *clicks]
    return events


def test_evaluated_policies_rank_the_logged_candidates() -> None:
    events = live_log()
    assert all(len(e.candidates) == RETRIEVED for e in events if isinstance(e, Slate))
    config = DriverConfig(n_bootstrap=50)
    result = evaluate_log(events, ["uniform_random"], embed, 4, config=config)
    estimates = result.policy("uniform_random").estimates
    assert estimates["ips"].value == pytest.approx(result.on_policy.value, rel=1e-12)
    assert estimates["snips"].value == pytest.approx(result.on_policy.value, rel=1e-12)
    assert estimates["slate_sips"].value == pytest.approx(2 * result.on_policy.value, rel=1e-12)
    without_slates = evaluate_log([e for e in events if not isinstance(e, Slate)], ["uniform_random"], embed, 4,
                                  config=config)
    assert without_slates.policy("uniform_random").estimates["ips"].value == pytest.approx(
        result.on_policy.value * RETRIEVED / N_ITEMS, rel=1e-12)
