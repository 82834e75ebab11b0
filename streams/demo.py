"""`slatestream demo`: the simulator through the full loop for each policy, then a report.

Runs on the embedded default: a RocksDB (rocksdict) state store per policy in the output
directory, item vectors from the BERT/ONNX encoder when an exported model is present
(`slatestream encoders export`), else from the deterministic hashing encoder. With a
configuration file (`--config`), the policy of the chosen scenario gets its hyperparameters,
and every policy that scenario's objectives and filters (see `demo_settings`).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from encoders.base import Encoder
from encoders.cache import CachedEncoder, EmbeddingCache
from encoders.hashing import HashingEncoder
from online.config import ScenarioConfig, SlatestreamConfig
from online.events import Item
from online.experiment import Embed, ExperimentConfig, PolicyRun, run_policy
from online.objectives import FilterSettings, ObjectiveSettings
from online.policies import make_policy
from online.policies.base import Policy
from online.simulation import Simulator, SimulatorConfig
from streams.report import summary_table, write_report
from streams.rocks_store import RocksDictStore


def make_embed(encoder: Encoder, dim: int, fit_items: Sequence[Item], seed: int) -> Embed:
    """Encoder -> (PCA to `dim` fitted on fit_items when encoder.dim > dim) -> unit vectors."""
    if encoder.dim <= dim:
        if encoder.dim != dim:
            raise ValueError(f"encoder dim {encoder.dim} < bandit dim {dim}")
        return lambda items: encoder.encode([item.text() for item in items])
    from encoders.projection import PcaProjection

    projection = PcaProjection.fit(encoder.encode([i.text() for i in fit_items]), dim, seed)

    def embed(items: Sequence[Item]) -> npt.NDArray[np.float32]:
        return projection.transform(encoder.encode([item.text() for item in items]))

    return embed


@dataclass(frozen=True)
class DemoScenario:
    """What a configuration file sets in the demo: the scenario simulated, a policy factory
    (the scenario's policy with its hyperparameters, others at their defaults), and the
    objectives and filters every policy is run with (None: plain relevance ranking)."""

    name: str
    settings: ScenarioConfig
    make: Callable[[str], Policy[Any, Any]]
    objectives: ObjectiveSettings | None
    filters: FilterSettings | None


def demo_settings(config: SlatestreamConfig, scenario: str | None) -> DemoScenario:
    """The demo's scenario from a configuration: `scenario` (resolved via the fallback), else
    the fallback scenario, else the first declared. Raises KeyError for one not configured."""
    name = config.resolve(scenario) if scenario else config.fallback_scenario or next(iter(config.scenarios))
    settings = config.scenarios[name]

    def make(policy: str) -> Policy[Any, Any]:
        return config.build_policy(policy) if policy == settings.policy.name else make_policy(policy)

    plain = settings.objectives == ObjectiveSettings() and settings.filters == FilterSettings()
    return DemoScenario(name, settings, make, None if plain else settings.objectives,
                        None if plain else settings.filters)


def run_demo(
    out_dir: Path,
    encoder: Encoder,
    policies: Sequence[str],
    experiment: ExperimentConfig,
    simulator_config: SimulatorConfig,
    dim: int,
    seed: int,
    scenario: DemoScenario | None = None,
) -> tuple[list[PolicyRun], Path]:
    """Run every policy on a simulator of the same seed; write the report; return both.
    `scenario` (from a configuration file) sets policies' hyperparameters and objectives."""
    make = scenario.make if scenario is not None else make_policy
    objectives = scenario.objectives if scenario is not None else None
    filters = scenario.filters if scenario is not None else None
    state_root = out_dir / "state"
    shutil.rmtree(state_root, ignore_errors=True)
    cache: EmbeddingCache | None = None
    if not isinstance(encoder, HashingEncoder):
        # every policy sees the same catalog: embed each text once (RocksDB cache, kept between runs)
        cache = EmbeddingCache(out_dir / "embedding-cache")
        encoder = CachedEncoder(encoder, cache)
    embed = make_embed(encoder, dim, Simulator(simulator_config).initial_items(), seed)
    runs: list[PolicyRun] = []
    total = experiment.n_requests * len(policies)
    with tqdm(total=total, unit="req", desc="demo", dynamic_ncols=True, mininterval=1.0) as bar:
        for index, name in enumerate(policies):
            bar.set_postfix_str(name)
            store = RocksDictStore(state_root / name)
            done = [0]

            def advance(step: int, done: list[int] = done) -> None:
                bar.update(step - done[0])
                done[0] = step

            try:
                runs.append(
                    run_policy(
                        make(name), Simulator(simulator_config), embed, store, dim,
                        experiment, np.random.default_rng([seed, index]), advance, objectives, filters,
                    )
                )
            finally:
                store.close()
    settings: dict[str, Any] = {
        "encoder": encoder.name, "dim": dim, "requests": experiment.n_requests,
        "learn_every": experiment.learn_every, "n_draws": experiment.n_draws, "seed": seed,
        "items": simulator_config.n_items, "users": simulator_config.n_users,
    }
    if scenario is not None:
        settings["scenario"] = scenario.name
    if cache is not None:
        cache.close()
    report = write_report(runs, out_dir, "slatestream demo: policies on the simulator", settings)
    print(summary_table([run.summary() for run in runs]))
    return runs, report
