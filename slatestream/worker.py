"""`slatestream worker`: run a streaming worker (streams.worker) on the configured model.

Infrastructure comes from SLATESTREAM_* environment variables (`StreamSettings`); the model
(scenarios, policies, engine, embedding) from --config / $SLATESTREAM_CONFIG, else one scenario
serving every request with --policy. Items are embedded in the worker by the configured encoder
(BERT on ONNX Runtime by default: exported on first use into the per-user cache), on the
configured device, and projected to d by the projection every worker shares (streams.projection).
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from online.config import CONFIG_ENV
from online.policies import POLICIES
from slatestream.options import (
    DEVICE_CHOICE,
    DIM_HELP,
    ENCODER_CHOICE,
    ENCODER_HELP,
    N_DRAWS_HELP,
    config_option,
    configured,
    encoder_for,
    load_config,
)
from streams.worker.config import WorkerConfig  # a dataclass: no Faust or Kafka client imported


@click.command("worker")
@click.option("--policy", default=None, type=click.Choice(list(POLICIES)),
              help="The policy of every scenario when no configuration is given  [default: linear_ts]")
@config_option
@click.option("--encoder", "encoder_kind", type=ENCODER_CHOICE, default=None, help=ENCODER_HELP)
@click.option("--device", type=DEVICE_CHOICE, default=None,
              help="Where the encoder and retrieval run: auto (CUDA when a GPU is present), cpu, or cuda (an "
                   "error without a GPU)  [default: the configuration's embedding.device, auto]")
@click.option("--dim", type=int, default=None, help=DIM_HELP)
@click.option("--n-draws", type=int, default=None, help=N_DRAWS_HELP)
@click.option("--batch-size", type=int, default=WorkerConfig.batch_size, show_default=True,
              help="Most impressions, clicks and control records learned in one batch (under a backlog, "
                   "a learn call holds the event loop ~20 us per record; while requests come in, "
                   "--serving-piece-records).")
@click.option("--request-batch-size", type=click.IntRange(min=1), default=WorkerConfig.request_batch_size,
              show_default=True,
              help="Most requests taken in one list (ranked one by one, answered in groups: see "
                   "--request-group-ms); a feedback list can be learned between two lists.")
@click.option("--request-group-ms", type=click.FloatRange(min=0.0), default=WorkerConfig.request_group_s * 1000.0,
              show_default=True,
              help="Requests ranked within this many milliseconds of each other share one acknowledged "
                   "changelog flush before their slates are sent (0: each request waits its own).")
@click.option("--serving-piece-records", type=click.IntRange(min=1), default=WorkerConfig.serving_piece_records,
              show_default=True,
              help="While requests come in (see --serving-window-ms), feedback is learned in calls of at most "
                   "this many records, each after the requests waiting were answered (see "
                   "--requests-first-ms): a request waits for one such call, not a whole batch.")
@click.option("--serving-window-ms", type=click.FloatRange(min=0.0), default=WorkerConfig.serving_window_s * 1000.0,
              show_default=True,
              help="Requests count as coming in for this many milliseconds after the last list of them was "
                   "taken: feedback is learned in pieces until then, in whole batches after (faster; the "
                   "first request after a longer quiet waits for one batch).")
@click.option("--requests-first-ms", type=click.FloatRange(min=0.0),
              default=WorkerConfig.requests_first_wait_s * 1000.0, show_default=True,
              help="Before each learn call, wait at most this many milliseconds for the requests waiting to "
                   "be ranked and answered (0: learning never waits for requests).")
@click.option("--flush-interval-ms", type=click.FloatRange(min=0.0), default=WorkerConfig.flush_interval_s * 1000.0,
              show_default=True,
              help="Under a backlog, learned state goes to the changelog (and the records it came from are "
                   "acked) at most this many milliseconds after the last such flush: longer sends each busy "
                   "user's state fewer times, and replays more after a crash (deduplicated by offsets).")
@click.option("--gc-young-threshold", type=click.IntRange(min=1), default=WorkerConfig.gc_young_threshold,
              show_default=True,
              help="Net allocations between the cyclic garbage collector's young-generation passes once "
                   "partitions are assigned (Python's default: 700; higher: fewer passes over the live "
                   "state, cycles found later).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--loglevel", default="info", show_default=True)
def worker_command(policy: str | None, config_path: Path | None, encoder_kind: str | None, device: str | None,
                   dim: int | None, n_draws: int | None, batch_size: int, request_batch_size: int,
                   request_group_ms: float, serving_piece_records: int, serving_window_ms: float,
                   requests_first_ms: float, flush_interval_ms: float, gc_young_threshold: int, seed: int,
                   loglevel: str) -> None:
    """Run a streaming worker (settings from SLATESTREAM_* environment variables; scenarios and
    policies from --config / $SLATESTREAM_CONFIG, else one scenario with --policy)."""
    from slatestream.options import stream_settings
    from streams.preflight import BrokerCheckError
    from streams.worker.preflight import preflight

    if configured(config_path) and policy is not None:
        raise click.UsageError("--policy and a configuration file both set the policy: give one of them")
    model = load_config(config_path, dim=dim, encoder=encoder_kind, n_draws=n_draws, device=device)
    if policy is not None:
        model = model.with_policy(policy)
    source = str(config_path or os.environ.get(CONFIG_ENV) or "built-in defaults")
    settings = stream_settings()
    try:
        preflight(settings)  # before Faust and the encoder load: a wrong password is named in seconds
        from streams.worker.run import run_worker

        runtime = WorkerConfig(batch_size=batch_size, request_batch_size=request_batch_size,
                               request_group_s=request_group_ms / 1000.0, flush_interval_s=flush_interval_ms / 1000.0,
                               serving_piece_records=serving_piece_records,
                               serving_window_s=serving_window_ms / 1000.0,
                               requests_first_wait_s=requests_first_ms / 1000.0,
                               gc_young_threshold=gc_young_threshold, seed=seed)
        run_worker(settings, model, runtime, encoder_for(model), loglevel, source)
    except BrokerCheckError as error:  # the cause and the settings to check, not a traceback
        raise click.ClickException(str(error)) from None
