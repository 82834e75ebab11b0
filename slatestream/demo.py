"""`slatestream demo`: the simulator through the full loop for each policy, then a report.

Runs on the embedded default: a RocksDB (rocksdict) state store per policy in the output
directory, item vectors from the configuration's embedding (`encoders.embedding`: BERT/ONNX when
an exported model is present, else text hashing), the engine settings of the configuration.
With a configuration file, the policy of the chosen scenario gets its hyperparameters, and
every policy that scenario's objectives and filters (see `demo_settings`).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np
from tqdm import tqdm

from encoders.embedding import ItemEmbedding
from online.catalog import Catalog
from online.config import ScenarioConfig, SlatestreamConfig
from online.engine import RankError
from online.experiment import ExperimentConfig, PolicyRun, run_policy
from online.objectives import FilterSettings, ObjectiveSettings
from online.policies import POLICIES, make_policy
from online.policies.base import Policy
from online.retrieval import Retriever
from online.simulation import Simulator, SimulatorConfig
from slatestream.options import (
    DIM_HELP,
    ENCODER_CHOICE,
    ENCODER_HELP,
    N_DRAWS_HELP,
    config_option,
    configured,
    item_embedding,
    load_config,
    policy_names,
    retriever_for,
)
from slatestream.reports.demo import summary_table, write_report
from slatestream.store import RocksDictStore


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


def run_demo(out_dir: Path, embed: ItemEmbedding, policies: Sequence[str], experiment: ExperimentConfig,
             simulator_config: SimulatorConfig, seed: int, scenario: DemoScenario | None = None,
             retriever_for: Callable[[Catalog], Retriever] | None = None) -> tuple[list[PolicyRun], Path]:
    """Run every policy on a simulator of the same seed; write the report; return both.
    `scenario` (from a configuration file) sets policies' hyperparameters and objectives."""
    make = scenario.make if scenario is not None else make_policy
    objectives = scenario.objectives if scenario is not None else None
    filters = scenario.filters if scenario is not None else None
    state_root = out_dir / "state"
    shutil.rmtree(state_root, ignore_errors=True)
    runs: list[PolicyRun] = []
    with tqdm(total=experiment.n_requests * len(policies), unit="req", desc="demo", dynamic_ncols=True,
              mininterval=1.0) as bar:
        for index, name in enumerate(policies):
            bar.set_postfix_str(name)
            store = RocksDictStore(state_root / name)
            done = [0]

            def advance(step: int, done: list[int] = done) -> None:
                bar.update(step - done[0])
                done[0] = step

            try:
                runs.append(run_policy(make(name), Simulator(simulator_config), embed, store, embed.dim, experiment,
                                       np.random.default_rng([seed, index]), advance, objectives, filters,
                                       retriever_for=retriever_for, embed_text=embed.text))
            except RankError as error:  # e.g. filters no catalog item passes: the configuration's doing
                raise click.ClickException(f"{name} cannot rank the simulator's requests: {error}") from None
            finally:
                store.close()
    settings: dict[str, Any] = {
        "encoder": embed.name, "dim": embed.dim, "requests": experiment.n_requests,
        "learn_every": experiment.learn_every, "n_draws": experiment.engine_config().n_draws, "seed": seed,
        "items": simulator_config.n_items, "users": simulator_config.n_users,
    }
    if scenario is not None:
        settings["scenario"] = scenario.name
    report = write_report(runs, out_dir, "slatestream demo: policies on the simulator", settings)
    print(summary_table([run.summary() for run in runs]))
    return runs, report


@click.command("demo")
@click.option("--out", type=click.Path(path_type=Path), default=Path("reports/demo"), show_default=True)
@click.option("--requests", "n_requests", type=int, default=4000, show_default=True, help="Requests per policy.")
@click.option("--policies", default=",".join(POLICIES), show_default=True)
@click.option("--encoder", "encoder_kind", type=ENCODER_CHOICE, default=None,
              help=ENCODER_HELP)
@click.option("--model", type=click.Path(path_type=Path), default=None, help="An exported .onnx file.")
@click.option("--dim", type=int, default=None, help=DIM_HELP)
@click.option("--n-draws", type=int, default=None, help=N_DRAWS_HELP)
@click.option("--learn-every", type=int, default=20, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@config_option
@click.option("--scenario", default=None, help="With --config: the scenario to simulate (default: the fallback "
              "scenario, else the first declared).")
def demo_command(out: Path, n_requests: int, policies: str, encoder_kind: str | None, model: Path | None,
                 dim: int | None, n_draws: int | None, learn_every: int, seed: int, config_path: Path | None,
                 scenario: str | None) -> None:
    """Run every policy through the simulator and write a report to OUT."""
    names = policy_names(policies)
    config = load_config(config_path, dim=dim, encoder=encoder_kind, n_draws=n_draws)
    experiment = ExperimentConfig(n_requests=n_requests, learn_every=learn_every, engine=config.engine)
    simulator = SimulatorConfig(horizon=n_requests, seed=seed)
    chosen: DemoScenario | None = None
    if configured(config_path) or scenario is not None:
        try:
            chosen = demo_settings(config, scenario)
        except KeyError as error:
            raise click.BadParameter(str(error.args[0]), param_hint="--scenario") from error
        simulator = SimulatorConfig(horizon=n_requests, seed=seed, scenario=chosen.name, k=chosen.settings.slate_size,
                                    n_candidates=None if chosen.settings.candidates == "retrieval" else 100)
        click.echo(f"config: scenario {chosen.name!r}, slate size {chosen.settings.slate_size}, "
                   f"{chosen.settings.policy.name} {chosen.settings.policy.params or '(defaults)'}")
    # every policy sees the same catalog: embed each text once (a RocksDB cache, kept between runs)
    embed = item_embedding(config, Simulator(simulator).initial_items(), seed, model, out / "embedding-cache")
    click.echo(f"encoder: {embed.description}; state: rocksdict under {out}/state")
    try:
        _, report = run_demo(out, embed, names, experiment, simulator, seed, chosen, retriever_for(config))
    finally:
        embed.close()
    click.echo(f"report: {report}")
