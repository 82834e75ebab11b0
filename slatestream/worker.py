"""`slatestream worker`: run a streaming worker (streams.worker) on the configured model.

Infrastructure comes from SLATESTREAM_* environment variables (`StreamSettings`); the model
(scenarios, policies, engine, embedding) from --config / $SLATESTREAM_CONFIG, else one scenario
serving every request with --policy.
"""

from __future__ import annotations

from pathlib import Path

import click

from encoders.embedding import ItemEmbedding
from encoders.hashing import HashingEncoder
from encoders.projection import PcaProjection
from online.policies import POLICIES
from slatestream.options import DIM_HELP, N_DRAWS_HELP, config_option, configured, encoder_for, load_config


def worker_embedding(encoder_kind: str, dim: int, projection: Path | None) -> ItemEmbedding:
    """The worker's item embedding: text hashing straight at d, or the BERT/ONNX model with a
    fitted projection file (the same projection for every worker)."""
    if encoder_kind == "hashing":
        return ItemEmbedding(HashingEncoder(dim=dim), dim)
    if projection is None:
        raise click.BadParameter("--encoder onnx needs --projection (a PcaProjection file)")
    config = load_config(None, dim=dim, encoder="onnx")
    try:
        return ItemEmbedding(encoder_for(config), dim, PcaProjection.from_bytes(projection.read_bytes()))
    except ValueError as error:
        raise click.ClickException(f"--projection {projection}: {error}") from error


@click.command("worker")
@click.option("--policy", default=None, type=click.Choice(list(POLICIES)),
              help="The policy of every scenario when no configuration is given  [default: linear_ts]")
@config_option
@click.option("--encoder", "encoder_kind", type=click.Choice(["hashing", "onnx"]), default="hashing",
              show_default=True, help="hashing: text hashing at --dim; onnx: BERT/ONNX plus --projection.")
@click.option("--projection", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A fitted PCA projection (encoders.projection) from the ONNX model's dimension to --dim.")
@click.option("--dim", type=int, default=None, help=DIM_HELP)
@click.option("--n-draws", type=int, default=None, help=N_DRAWS_HELP)
@click.option("--batch-size", type=int, default=8_000, show_default=True,
              help="Most impressions, clicks and control records learned in one batch (under a backlog, "
                   "a partition's share holds the event loop ~50 us per record).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--loglevel", default="info", show_default=True)
def worker_command(policy: str | None, config_path: Path | None, encoder_kind: str, projection: Path | None,
                   dim: int | None, n_draws: int | None, batch_size: int, seed: int, loglevel: str) -> None:
    """Run a streaming worker (settings from SLATESTREAM_* environment variables; scenarios and
    policies from --config / $SLATESTREAM_CONFIG, else one scenario with --policy)."""
    from streams.settings import StreamSettings
    from streams.worker.config import WorkerConfig
    from streams.worker.run import run_worker

    if configured(config_path) and policy is not None:
        raise click.UsageError("--policy and a configuration file both set the policy: give one of them")
    model = load_config(config_path, dim=dim, n_draws=n_draws)
    if policy is not None:
        model = model.with_policy(policy)
    embed = worker_embedding(encoder_kind, model.embedding.dim, projection)
    run_worker(StreamSettings(), model, WorkerConfig(batch_size=batch_size, seed=seed), embed, loglevel)
