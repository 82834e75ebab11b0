"""The measured points of an objective-weight sweep: each setting run on the simulator, or
evaluated counterfactually on a log (the grid, Pareto fronts and recommendation are in
`online.evaluation.sweep`).

On the simulator every setting runs the same policy closed-loop on simulators of the same
seeds (`online.experiment.run_policy`, paired); on a log every setting is a `PolicyVariant`
evaluated in one pass (`online.evaluation.driver.evaluate_log`; its CTR is the SNIPS estimate,
else DR, IPS or replay, its ILD and Gini those of the slates it would serve).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from online.catalog import Catalog
from online.datasets.logs import LoadedLog
from online.engine import EngineConfig
from online.evaluation.bootstrap import bootstrap_ratio
from online.evaluation.config import DriverConfig
from online.evaluation.driver import PolicyVariant, evaluate_log
from online.evaluation.sweep import SweepPoint, label_of
from online.events import Item
from online.experiment import Embed, ExperimentConfig, run_policy
from online.objectives import ObjectiveSettings
from online.policies import make_policy
from online.retrieval import Retriever
from online.simulation import Simulator, SimulatorConfig
from online.state import InMemoryStore

OBD_SWEEP_CAVEAT = (
    "The OBD sample has only 80 items and ~35-40 clicks per 10,000-row log: CTR differences between "
    "settings are within noise (see the intervals), so this frontier is indicative only; ILD and "
    "exposure Gini are measured on the slates each setting would serve (item vectors: item_context.csv "
    "features, standardised, PCA). The relevance model is linear TS on the item vectors only (OBD's user "
    "features are left out to keep the sweep to minutes); CTR is the SNIPS estimate."
)
CTR_ESTIMATORS = ("snips", "dr", "ips", "replay")
"""The CTR of a log point: the first estimate present (SNIPS is never negative, unlike DR on a
small log, so "95% of the baseline's CTR" stays meaningful)."""
Progress = Callable[[int], None]


def memo_embed(embed: Embed) -> Embed:
    """`embed` remembering each item id's vector (the sweep meets the same items once per setting)."""
    vectors: dict[str, np.ndarray[Any, Any]] = {}

    def cached(items: Sequence[Item]) -> np.ndarray[Any, Any]:
        missing = [item for item in items if item.item_id not in vectors]
        if missing:
            vectors.update(zip((item.item_id for item in missing), embed(missing), strict=True))
        return np.stack([vectors[item.item_id] for item in items]) if items else np.zeros((0, 0), np.float32)

    return cached


def obd_item_embed(action_context: np.ndarray[Any, Any], dim: int) -> Embed:
    """OBD item vectors float32[n, min(dim, f)] by item id, from item_context.csv's features
    float[n, f] (`OBDArrays.action_context`: numeric columns, categorical ones one-hot):
    columns standardised, projected on their first `dim` principal components, unit length."""
    matrix = np.asarray(action_context, dtype=np.float64)
    spread = matrix.std(axis=0)
    centred = (matrix - matrix.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    projected = centred @ components[:dim].T
    norms = np.linalg.norm(projected, axis=1, keepdims=True)
    unit = (projected / np.where(norms > 0, norms, 1.0)).astype(np.float32)

    def embed(items: Sequence[Item]) -> np.ndarray[Any, Any]:
        return np.asarray(unit[[int(item.item_id) for item in items]])

    return embed


@dataclass(frozen=True)
class SimulatorSweep:
    """The simulator side: policy name, seeds (paired: every setting sees the same ones),
    requests per run, bandit dimension, the item embedding per seed, the Engine's settings."""

    policy: str
    seeds: tuple[int, ...]
    requests: int
    dim: int
    embed_for: Callable[[SimulatorConfig], Embed]
    engine: EngineConfig = field(default_factory=EngineConfig)
    retriever_for: Callable[[Catalog], Retriever] | None = None


def simulate_points(settings: Sequence[ObjectiveSettings], sweep: SimulatorSweep, progress: Progress | None = None,
                    n_bootstrap: int = 500) -> list[SweepPoint]:
    """One `SweepPoint` per setting: CTR over all seeds' requests (bootstrap interval over
    requests), mean ILD and exposure Gini over seeds; per-seed values in `extra`."""
    per_seed: list[dict[str, list[float]]] = [{"ctr": [], "ild": [], "gini": []} for _ in settings]
    pooled: list[tuple[list[np.ndarray[Any, Any]], list[np.ndarray[Any, Any]]]] = [([], []) for _ in settings]
    done = 0
    for seed in sweep.seeds:
        simulator_config = SimulatorConfig(horizon=sweep.requests, seed=seed)
        embed = sweep.embed_for(simulator_config)
        for index, setting in enumerate(settings):
            run = run_policy(make_policy(sweep.policy), Simulator(simulator_config), embed, InMemoryStore(), sweep.dim,
                             ExperimentConfig(n_requests=sweep.requests, engine=sweep.engine),
                             np.random.default_rng([seed, 0]), objectives=setting,
                             retriever_for=sweep.retriever_for)
            summary = run.summary()
            per_seed[index]["ctr"].append(summary["ctr"])
            per_seed[index]["ild"].append(summary["diversity"])
            per_seed[index]["gini"].append(summary["exposure_gini"])
            pooled[index][0].append(run.clicks)
            pooled[index][1].append(run.shown.astype(np.float64))
            done += sweep.requests
            if progress is not None:
                progress(done)
    points = []
    for index, setting in enumerate(settings):
        clicks, shown = np.concatenate(pooled[index][0]), np.concatenate(pooled[index][1])
        ctr, low, high = bootstrap_ratio(clicks, shown, rng=np.random.default_rng([index, 7]), n_bootstrap=n_bootstrap)
        figures = per_seed[index]
        points.append(SweepPoint(label_of(setting), setting, ctr, float(np.mean(figures["ild"])),
                                 float(np.mean(figures["gini"])), low, high,
                                 {"seeds": list(sweep.seeds), "per_seed": figures}))
    return points


def log_points(settings: Sequence[ObjectiveSettings], loaded: LoadedLog, policy: str, embed: Embed, dim: int,
               config: DriverConfig, progress: Progress | None = None,
               retriever_for: Callable[[Catalog], Retriever] | None = None) -> list[SweepPoint]:
    """One `SweepPoint` per setting, all evaluated counterfactually in one pass over the log."""
    variants = [PolicyVariant(policy, setting, label=label_of(setting)) for setting in settings]
    result = evaluate_log(loaded.events, variants, embed, dim, features=loaded.features, config=config,
                          progress=progress, retriever_for=retriever_for)
    points = []
    for setting, evaluation in zip(settings, result.policies, strict=True):
        name = next(n for n in CTR_ESTIMATORS if n in evaluation.estimates)
        estimate = evaluation.estimates[name]
        points.append(SweepPoint(
            evaluation.policy, setting, estimate.value, evaluation.metrics["intra_list_diversity"],
            evaluation.metrics["exposure_gini"], estimate.ci_low, estimate.ci_high,
            {"ctr_estimator": name, "estimates": {n: e.value for n, e in evaluation.estimates.items()},
             "match_rate": evaluation.metrics["match_rate"]},
        ))
    return points
