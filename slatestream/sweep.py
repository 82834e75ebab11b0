"""`slatestream sweep`: a grid of objective weights, measured, with its Pareto frontier.

    slatestream sweep --data sim --out DIR                       # the simulator
    slatestream sweep --data obd:PATH --out DIR                  # the Open Bandit sample

Each setting of the grid (`online.evaluation.sweep.SweepGrid`) is one point: its CTR, mean
intra-list diversity (ILD) and exposure Gini, measured by `online.evaluation.sweep_points` (on
the simulator, closed loop, paired seeds; on a log, counterfactually). Writes DIR/sweep.json,
DIR/sweep.md, DIR/frontier_ild.png and DIR/frontier_gini.png.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from online.config import SlatestreamConfig
from online.datasets import load_obd_arrays, obd_paths
from online.evaluation.config import DriverConfig
from online.evaluation.sweep import SweepGrid, parse_positions, parse_weights
from online.evaluation.sweep_points import (
    OBD_SWEEP_CAVEAT,
    SimulatorSweep,
    log_points,
    memo_embed,
    obd_item_embed,
    simulate_points,
)
from online.features import ItemFeatures
from online.objectives import ObjectiveSettings
from online.simulation import Simulator, SimulatorConfig
from slatestream.evaluate import load_log_or_fail
from slatestream.options import (
    DIM_HELP,
    ENCODER_CHOICE,
    ENCODER_HELP,
    N_DRAWS_HELP,
    config_option,
    item_embedding,
    load_config,
    policy_names,
    progress,
    retriever_for,
)
from slatestream.reports.sweep import write_sweep_report


def grid_settings(options: dict[str, Any]) -> list[ObjectiveSettings]:
    """The grid the weight options describe (BadParameter naming a bad one)."""
    try:
        diversity, novelty, fairness = (parse_weights(options[name], f"--{name}")
                                        for name in ("diversity", "novelty", "fairness"))
        grid = SweepGrid(diversity, novelty, fairness, options["method"], options["shortlist"],
                         position_power=parse_weights(options["position_power"], "--position-power"),
                         from_position=parse_positions(options["from_position"], "--from-position"),
                         score_units=options["score_units"], slate_order=options["slate_order"])
        return list(grid.settings())
    except ValueError as error:
        raise click.BadParameter(str(error)) from error


def simulator_sweep(config: SlatestreamConfig, policy: str, settings: list[ObjectiveSettings], out: Path,
                    seeds: tuple[int, ...], requests: int, n_bootstrap: int) -> tuple[list[Any], str]:
    """Points of every setting on the simulator, and the data's description."""
    first = SimulatorConfig(horizon=requests, seed=seeds[0])
    # every setting and seed meets the same texts: one cached encoder, a projection per seed
    shared = item_embedding(config, Simulator(first).initial_items(), first.seed, cache_dir=out / "embedding-cache")

    def embed_for(simulator: SimulatorConfig) -> Any:
        return memo_embed(shared.refitted(Simulator(simulator).initial_items(), simulator.seed))

    sweep = SimulatorSweep(policy, seeds, requests, shared.dim, embed_for, config.engine, retriever_for(config))
    try:
        with progress(requests * len(seeds) * len(settings), "req", "sweep") as advance:
            points = simulate_points(settings, sweep, advance, n_bootstrap)
    finally:
        shared.close()
    return points, (f"simulator (default config, seeds {list(seeds)}, {requests} requests per run), "
                    f"encoder {shared.description}")


def log_sweep(config: SlatestreamConfig, data: str, policy: str, settings: list[ObjectiveSettings],
              driver: DriverConfig, behavior_policy: str, campaign: str) -> tuple[list[Any], str, list[str]]:
    """Points of every setting on a log, its description and caveats."""
    loaded = load_log_or_fail(data, behavior_policy, campaign)
    caveats = list(loaded.caveats)
    if data.startswith("obd:"):
        log_csv, item_csv = obd_paths(data.partition(":")[2], behavior_policy, campaign)
        action_context = load_obd_arrays(log_csv, item_csv).action_context
        if action_context is None:  # pragma: no cover - load_obd_arrays always reads item_context.csv here
            raise click.ClickException(f"{item_csv}: no item features")
        dim = min(config.embedding.dim, action_context.shape[1])
        embed, vectors, caveats = obd_item_embed(action_context, dim), "item_context.csv features (PCA)", [
            OBD_SWEEP_CAVEAT]
        loaded = replace(loaded, features=ItemFeatures())  # linear TS on item vectors only (speed)
        with progress(_rounds(loaded.rounds, driver.max_rounds), "round", "sweep") as advance:
            points = log_points(settings, loaded, policy, embed, dim, driver, advance)
    else:
        embedding = item_embedding(config, loaded.items, driver.seed)
        dim, vectors = embedding.dim, embedding.name
        try:
            with progress(_rounds(loaded.rounds, driver.max_rounds), "round", "sweep") as advance:
                points = log_points(settings, loaded, policy, embedding, dim, driver, advance, retriever_for(config))
        finally:
            embedding.close()
    return points, f"{loaded.description}, item vectors: {vectors} (d={dim})", caveats


def _rounds(rounds: int | None, max_rounds: int | None) -> int | None:
    return rounds if max_rounds is None or rounds is None else min(rounds, max_rounds)


@click.command("sweep")
@click.option("--data", required=True, help="sim (the simulator), obd:PATH, mind:PATH or events:PATH.")
@click.option("--policy", default="linear_ts", show_default=True, help="The one policy whose objectives are swept.")
@config_option
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output directory.")
@click.option("--n-draws", type=int, default=None, help=N_DRAWS_HELP)
@click.option("--seed", type=int, default=0, show_default=True, help="First seed (sim) or the driver's seed (logs).")
@click.option("--encoder", "encoder_kind", type=ENCODER_CHOICE, default=None, help=ENCODER_HELP)
@click.option("--dim", type=int, default=None, help=DIM_HELP)
@click.option("--diversity", default="0,2,5,10", show_default=True, help="Diversity weights.")
@click.option("--novelty", default="0", show_default=True, help="Novelty weights.")
@click.option("--fairness", default="0,1", show_default=True, help="Exposure-fairness weights (per item).")
@click.option("--method", type=click.Choice(["mmr", "ild", "dpp"]), default="mmr", show_default=True,
              help="Re-ranking method (MMR: max similarity, ILD: mean similarity, DPP).")
@click.option("--position-power", default="0", show_default=True,
              help="Position-aware diversity, the weight at slate position p is w * (1 + p) ** power; "
              "comma-separated powers, each crossed with every diversity weight > 0 (0 = flat).")
@click.option("--from-position", default="0", show_default=True,
              help="Positions before this are ranked by relevance alone; comma-separated, crossed too.")
@click.option("--shortlist", type=int, default=5, show_default=True,
              help="Re-rank the top shortlist x k items per draw (0 = all).")
@click.option("--score-units", type=click.Choice(["standardised", "score"]), default="standardised",
              show_default=True, help="Units of the weights (ObjectiveSettings.score_units).")
@click.option("--slate-order", type=click.Choice(["greedy", "utility"]), default="greedy", show_default=True,
              help="Serve the diversified picks in greedy order or by utility (ObjectiveSettings.slate_order).")
@click.option("--requests", type=int, default=1500, show_default=True, help="On sim: requests per run.")
@click.option("--seeds", type=int, default=1, show_default=True, help="On sim: simulator seeds (paired).")
@click.option("--max-rounds", type=int, default=None, help="On a log: evaluate only the first N rounds.")
@click.option("--behavior-policy", type=click.Choice(["random", "bts"]), default="random", show_default=True)
@click.option("--campaign", type=click.Choice(["all", "men", "women"]), default="all", show_default=True)
@click.option("--learn-every", type=int, default=1, show_default=True, help="On a log: rounds per learning batch.")
@click.option("--n-bootstrap", type=int, default=1000, show_default=True)
def sweep_command(data: str, policy: str, config_path: Path | None, out: Path, n_draws: int | None, seed: int,
                  encoder_kind: str | None, dim: int | None, requests: int, seeds: int, max_rounds: int | None,
                  behavior_policy: str, campaign: str, learn_every: int, n_bootstrap: int, **grid: Any) -> None:
    """Sweep a grid of objective weights for one policy; write the frontier report to OUT."""
    if len(policy_names(policy, "--policy")) != 1:
        raise click.BadParameter("give one registered policy", param_hint="--policy")
    settings = grid_settings(grid)
    if requests < 1 or seeds < 1:
        raise click.BadParameter("--requests and --seeds must be >= 1")
    config = load_config(config_path, dim=dim, encoder=encoder_kind, n_draws=n_draws)
    common: dict[str, Any] = {"policy": policy, "grid": len(settings), **grid, "n_draws": config.engine.n_draws}
    caveats: list[str] = []
    if data == "sim":
        seed_list = tuple(range(seed, seed + seeds))
        points, description = simulator_sweep(config, policy, settings, out, seed_list, requests, n_bootstrap)
        common |= {"requests": requests, "seeds": list(seed_list)}
    else:
        driver = DriverConfig(engine=config.engine, learn_every=learn_every, n_bootstrap=n_bootstrap,
                              max_rounds=max_rounds, seed=seed)
        points, description, caveats = log_sweep(config, data, policy, settings, driver, behavior_policy, campaign)
        common |= {"max_rounds": max_rounds, "learn_every": learn_every, "seed": seed}
    report = write_sweep_report(points, out, description, caveats, common)
    click.echo(report.read_text().split("| setting |")[0].strip())
    click.echo(f"report: {report}")
