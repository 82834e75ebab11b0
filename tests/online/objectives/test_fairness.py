"""Exposure fairness on a seeded simulation (closed loop through run_policy; runs cached per settings)."""

from datetime import UTC, datetime
from functools import cache

import numpy as np

from encoders.hashing import HashingEncoder
from online.evaluation.metrics import gini
from online.experiment import ExperimentConfig, PolicyRun, run_policy
from online.objectives import ObjectiveSettings
from online.policies.linear_ts import LinearThompsonSampling
from online.simulation import Simulator, SimulatorConfig
from online.state import InMemoryStore

ENCODER = HashingEncoder(dim=16)
SIMULATOR = SimulatorConfig(seed=4, n_items=400, initial_item_fraction=1.0, n_users=200, n_candidates=50, horizon=1200)


def embed(items):  # type: ignore[no-untyped-def]
    return ENCODER.encode([item.text() for item in items])


@cache
def run(objectives: ObjectiveSettings | None) -> PolicyRun:
    return run_policy(LinearThompsonSampling(), Simulator(SIMULATOR), embed, InMemoryStore(), ENCODER.dim,
                      ExperimentConfig(n_requests=1200, n_draws=16), np.random.default_rng(0), objectives=objectives)


def provider_shares(exposure: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(exposure share, catalog share) per provider (brand), float64[P] each."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    simulator = Simulator(SIMULATOR)
    providers = [simulator.catalog.item(row, start).provider for row in range(len(exposure))]
    names = sorted({p for p in providers if p is not None})
    codes = np.array([names.index(p) for p in providers])
    return np.bincount(codes, weights=exposure) / exposure.sum(), np.bincount(codes) / len(codes)


def test_provider_fairness_raises_the_under_exposed_providers_share() -> None:
    baseline = run(None)
    fair = run(ObjectiveSettings(fairness=1.5, fairness_group="provider"))
    base_share, catalog_share = provider_shares(baseline.exposure)
    fair_share, _ = provider_shares(fair.exposure)
    under = base_share < catalog_share  # providers shown less than their share of the catalog
    assert 0 < under.sum() < len(under)
    assert fair_share[under].sum() > base_share[under].sum() + 0.02  # measured: 0.54 -> 0.59
    assert gini(fair_share / catalog_share) < gini(base_share / catalog_share)


def test_item_fairness_lowers_the_exposure_gini_and_summary_reports_it() -> None:
    baseline, fair = run(None).summary(), run(ObjectiveSettings(fairness=1.5)).summary()
    assert fair["exposure_gini"] < baseline["exposure_gini"] - 0.1  # measured: 0.48 -> 0.28
    assert 0.0 < fair["exposure_gini"] < 1.0
