"""`slatestream evaluate`: counterfactual evaluation of policies on a logged stream, and its report.

    slatestream evaluate --data obd:PATH --policies linear_ts,bernoulli_ts,uniform_random --out DIR

--data names the log (`online.datasets.logs`): `obd:PATH` (obp's obd folder, with
--behavior-policy and --campaign), `mind:PATH` (a folder with behaviors.tsv and news.tsv), or
`events:PATH` (the project's JSON-lines event file, e.g. from `slatestream replay`). The
configuration (--config or $SLATESTREAM_CONFIG) gives the engine, the item embedding and the
configured policies' hyperparameters, as the worker serves them; the projection to d is the
worker's, read from the projection topic, when a broker is configured (--projection:
`slatestream.evaluate_embedding`), and the report says which one was used. The pure driver
(`online.evaluation.driver`) does the work; this command writes DIR/evaluation.json,
DIR/report.md and its PNG plots.

Policies learn along the log (their value is an average over their learning) unless fixed:
`--snapshot LABEL=POLICY:DIR[,DIR...][@TIME]` evaluates POLICY's learned state read from DIR,
never learning, on the rounds from TIME (when the state was taken: it holds the rewards of earlier
rounds) on: DIR is a worker's data directory (SLATESTREAM_STORE_DIR, each request ranked with its
user's partition's state, `slatestream.worker_snapshot`; several: a deployment's workers, together
holding every partition) or a state store (a RocksDB directory, e.g. `slatestream run --state
DIR`); POLICY `routed` ranks each request with its scenario's policy, as the worker routes it
(`slatestream.evaluate_snapshots`); worker data directories are checked against the state
changelog when SLATESTREAM_BROKER_URL is set, and with `--fresh-snapshots` a copy behind it (or not
checkable) is refused instead of reported; `--freeze-after N` also evaluates each policy frozen after
learning on the first N rounds (label POLICY@N), on the rest.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click

from online.config import CONFIG_ENV, SlatestreamConfig
from online.datasets.logs import OBD_CAVEAT, LoadedLog, LogSpecError, load_log
from online.evaluation.assessment import PRECISION, ReliabilityRule
from online.evaluation.config import DriverConfig
from online.evaluation.driver import PolicyVariant, evaluate_log
from online.policies.base import Policy
from slatestream.evaluate_embedding import PROJECTION_HELP, evaluation_embedding
from slatestream.evaluate_snapshots import SNAPSHOT_METAVAR, check_snapshot_embeddings, snapshot_variants
from slatestream.options import (
    DIM_HELP,
    ENCODER_CHOICE,
    ENCODER_HELP,
    N_DRAWS_HELP,
    config_option,
    configured,
    load_config,
    policy_names,
    progress,
    retriever_for,
)
from slatestream.reports.evaluation import fmt, write_evaluation_report

__all__ = ["OBD_CAVEAT", "evaluate_command", "load_log_or_fail"]
DEFAULT_POLICIES = "linear_ts,bernoulli_ts,uniform_random"
EVENTS_ATTRIBUTION_S = 1800.0
"""An events: log's rounds keep collecting their clicks this long (event time): the window within
which a click counts (`SLATESTREAM_ATTRIBUTION_WINDOW_S`'s default)."""


def attribution_window_of(data: str, seconds: float | None) -> float | None:
    """The rounds' attribution window (`DriverConfig.attribution_s`): --attribution-window, where 0
    means until the next request; by default EVENTS_ATTRIBUTION_S for an events: log (a replay
    interleaves users: the next request comes before this one's clicks), else until the next
    request (OBD and MIND rounds follow one another)."""
    if seconds is None:
        return EVENTS_ATTRIBUTION_S if data.startswith("events:") else None
    return None if seconds == 0 else seconds


def load_log_or_fail(data: str, behavior_policy: str, campaign: str) -> LoadedLog:
    """The log named by --data, with its catalog items (click errors otherwise)."""
    try:
        loaded = load_log(data, behavior_policy, campaign)
    except LogSpecError as error:
        raise click.BadParameter(str(error), param_hint="--data") from error
    if not loaded.items:
        raise click.ClickException(f"{data}: the log has no catalog items")
    return loaded


def chosen_policies(config: SlatestreamConfig, policies: str | None, from_file: bool) -> list[Policy[Any, Any] | str]:
    """The policies to evaluate: --policies, else the configuration's, else the default three;
    those the configuration declares with its hyperparameters."""
    if policies is None:
        policies = ",".join(config.policy_groups()) if from_file else DEFAULT_POLICIES
    groups = config.policy_groups() if from_file else {}
    return [config.build_policy(name) if name in groups else name for name in policy_names(policies)]


@click.command("evaluate")
@click.option("--data", required=True, help="obd:PATH (obp's obd folder), mind:PATH or events:PATH.")
@click.option("--policies", default=None,
              help=f"Comma-separated policies  [default: the configuration's, else {DEFAULT_POLICIES}]")
@config_option
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output directory.")
@click.option("--n-draws", type=int, default=None, help=N_DRAWS_HELP)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--max-rounds", type=int, default=None, help="Evaluate only the first N rounds.")
@click.option("--behavior-policy", type=click.Choice(["random", "bts"]), default="random", show_default=True)
@click.option("--campaign", type=click.Choice(["all", "men", "women"]), default="all", show_default=True)
@click.option("--encoder", "encoder_kind", type=ENCODER_CHOICE, default=None, help=ENCODER_HELP)
@click.option("--model", type=click.Path(path_type=Path), default=None, help="An exported .onnx file.")
@click.option("--dim", type=int, default=None, help=DIM_HELP)
@click.option("--projection", default="auto", metavar="auto|topic|fit|FILE", help=PROJECTION_HELP)
@click.option("--learn-every", type=int, default=1, show_default=True, help="Rounds per learning batch.")
@click.option("--learn-from", type=click.Choice(["all", "matched"]), default="all", show_default=True)
@click.option("--reward-model", type=click.Choice(["log_ctr", "river", "policy"]), default="log_ctr", show_default=True)
@click.option("--n-bootstrap", type=int, default=1000, show_default=True)
@click.option("--snapshot", "snapshots", multiple=True, metavar=SNAPSHOT_METAVAR,
              help="Also evaluate POLICY's fixed learned state from DIR (a state store, or a worker's data directory; "
                   "several, comma-separated: a deployment's workers, together every partition), on the rounds from "
                   "TIME (when it was taken; default: all) on; POLICY routed: each request with its scenario's policy, "
                   "as the worker routes it (repeatable).")
@click.option("--fresh-snapshots", is_flag=True, default=False,
              help="Refuse a --snapshot of worker data directories whose copies are behind the state changelog, or "
                   "that cannot be checked against it (SLATESTREAM_BROKER_URL unset), instead of evaluating it and "
                   "saying so in the report.")
@click.option("--freeze-after", type=click.IntRange(min=1), default=None,
              help="Also evaluate each policy frozen after learning on the first N rounds (label POLICY@N).")
@click.option("--attribution-window", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help=f"Seconds of event time a round keeps collecting its impression and clicks, past later requests; "
                   f"0: until the next request  [default: {EVENTS_ATTRIBUTION_S:g} for events:, else 0]")
@click.option("--precision", type=click.FloatRange(min=0, min_open=True), default=PRECISION, show_default=True,
              help="An estimate is called reliable only when its 95% interval's half-width is at most this share of "
                   "its value (inf: any width).")
def evaluate_command(data: str, policies: str | None, config_path: Path | None, out: Path, n_draws: int | None,
                     seed: int, max_rounds: int | None, behavior_policy: str, campaign: str, encoder_kind: str | None,
                     model: Path | None, dim: int | None, projection: str, learn_every: int, learn_from: str,
                     reward_model: str, n_bootstrap: int, snapshots: tuple[str, ...], fresh_snapshots: bool,
                     freeze_after: int | None, attribution_window: float | None, precision: float) -> None:
    """Evaluate POLICIES counterfactually on a logged stream and write a report to OUT."""
    config = load_config(config_path, dim=dim, encoder=encoder_kind, n_draws=n_draws)
    learning = chosen_policies(config, policies, configured(config_path))
    names = [p if isinstance(p, str) else p.name for p in learning]
    chosen: list[Policy[Any, Any] | str | PolicyVariant] = [*learning]
    if freeze_after is not None:
        chosen += [PolicyVariant(p, label=f"{name}@{freeze_after}", freeze_after=freeze_after)
                   for p, name in zip(learning, names, strict=True)]
    with ExitStack() as cleanup:
        stores: list[Any] = []
        cleanup.callback(lambda: [store.close() for store in stores])
        fixed = snapshot_variants(config, snapshots, configured(config_path), stores, fresh_snapshots)
        loaded = load_log_or_fail(data, behavior_policy, campaign)
        embed, projected = evaluation_embedding(config, projection, loaded.items, seed, model)
        cleanup.callback(embed.close)
        check_snapshot_embeddings(fixed, embed.version)
        logging_policy = loaded.logging_policy if loaded.logging_policy in names else None
        try:
            driver = DriverConfig(engine=config.engine, learn_from=learn_from,  # type: ignore[arg-type]
                                  learn_every=learn_every, reward_model=reward_model,  # type: ignore[arg-type]
                                  n_bootstrap=n_bootstrap, max_rounds=max_rounds, seed=seed,
                                  logging_policy=logging_policy, uniform_log=loaded.uniform,
                                  attribution_s=attribution_window_of(data, attribution_window),
                                  reliability=ReliabilityRule(precision=precision))
        except ValueError as error:
            raise click.BadParameter(str(error)) from error
        total = loaded.rounds if max_rounds is None or loaded.rounds is None else min(loaded.rounds, max_rounds)
        click.echo(f"{loaded.description}: policies {', '.join(names)}; encoder {embed.description}; projection "
                   f"{projected.note}")
        try:
            with progress(total, "round", "evaluate") as advance:
                result = evaluate_log(loaded.events, [*chosen, *fixed.variants], embed, embed.dim,
                                      features=loaded.features, config=driver, progress=advance,
                                      retriever_for=retriever_for(config), embed_text=embed.text)
        except ValueError as error:  # a snapshot of another dimension, too few rounds after --freeze-after, ...
            raise click.ClickException(str(error)) from error
    extra = {"encoder": embed.name, "dim": embed.dim, "projection": projected.to_dict(),
             "behavior_policy": behavior_policy, "campaign": campaign,
             "config": str(config_path or os.environ.get(CONFIG_ENV) or "defaults"), "snapshots": fixed.sources}
    embedding = f"Item embedding: {embed.description}; projection {projected.note}."
    report = write_evaluation_report(result, out, loaded.description, [*loaded.caveats, embedding, *fixed.notes],
                                     extra)
    click.echo(f"on-policy CTR {fmt(result.on_policy.value)}; report: {report}")
