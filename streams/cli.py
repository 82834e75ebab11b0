"""The `slatestream` command line: demo, encoders (and the streaming commands)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from online.experiment import ExperimentConfig
from online.policies import POLICIES


def _encoder(kind: str, model: Path | None):  # type: ignore[no-untyped-def]
    from encoders.hashing import HashingEncoder

    if kind == "hashing":
        return HashingEncoder(dim=256)
    try:
        from encoders.onnx_encoder import OnnxEncoder, default_model_path
    except ImportError as error:  # pragma: no cover - only without onnxruntime
        if kind == "onnx":
            raise click.ClickException(f"the ONNX encoder is unavailable: {error}") from error
        return HashingEncoder(dim=256)
    path = model or default_model_path()
    if path.exists():
        return OnnxEncoder(path)
    if kind == "onnx":
        raise click.ClickException(f"no ONNX model at {path}: run `slatestream encoders export`")
    return HashingEncoder(dim=256)


def _config(path: Path | None):  # type: ignore[no-untyped-def]
    """The configuration from --config, else $SLATESTREAM_CONFIG, else the defaults (online.config)."""
    from online.config import ConfigError, resolve_config

    try:
        return resolve_config(path)
    except ConfigError as error:
        raise click.ClickException(str(error)) from error


CONFIG_HELP = "A slatestream configuration file (.toml/.yaml); default: $SLATESTREAM_CONFIG, else built-in defaults."


@click.group()
def main() -> None:
    """slatestream: a streaming, online-learning slate recommender."""
    # The core does many small (D ~ 33) linear-algebra calls; threaded BLAS makes each
    # of them far slower on few cores (measured ~30x on 2 cores), so use one BLAS thread.
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


@main.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("reports/demo"), show_default=True)
@click.option("--requests", "n_requests", type=int, default=4000, show_default=True, help="Requests per policy.")
@click.option("--policies", default=",".join(POLICIES), show_default=True)
@click.option("--encoder", "encoder_kind", type=click.Choice(["auto", "onnx", "hashing"]), default="auto",
              show_default=True, help="auto: the exported BERT/ONNX model when present, else text hashing.")
@click.option("--model", type=click.Path(path_type=Path), default=None, help="An exported .onnx file.")
@click.option("--dim", type=int, default=32, show_default=True, help="Bandit feature dimension d.")
@click.option("--learn-every", type=int, default=20, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Configuration file: the simulated scenario's slate size, candidate source, policy "
                   "hyperparameters, objectives and filters, and the engine's n_draws.")
@click.option("--scenario", default=None, help="With --config: the scenario to simulate (default: the fallback "
              "scenario, else the first declared).")
def demo(out: Path, n_requests: int, policies: str, encoder_kind: str, model: Path | None,
         dim: int, learn_every: int, seed: int, config_path: Path | None, scenario: str | None) -> None:
    """Run every policy through the simulator and write a report to OUT."""
    from online.simulation import SimulatorConfig
    from streams.demo import DemoScenario, demo_settings, run_demo

    names = [name.strip() for name in policies.split(",") if name.strip()]
    unknown = [name for name in names if name not in POLICIES]
    if unknown:
        raise click.BadParameter(f"unknown policies {unknown}; known: {list(POLICIES)}")
    encoder = _encoder(encoder_kind, model)
    click.echo(f"encoder: {encoder.name} (D={encoder.dim}) -> d={dim}; state: rocksdict under {out}/state")
    experiment = ExperimentConfig(n_requests=n_requests, learn_every=learn_every)
    simulator = SimulatorConfig(horizon=n_requests, seed=seed)
    chosen: DemoScenario | None = None
    if config_path is not None or scenario is not None or os.environ.get("SLATESTREAM_CONFIG"):
        config = _config(config_path)
        try:
            chosen = demo_settings(config, scenario)
        except KeyError as error:
            raise click.BadParameter(str(error.args[0]), param_hint="--scenario") from error
        experiment = ExperimentConfig(n_requests=n_requests, learn_every=learn_every, n_draws=config.engine.n_draws)
        simulator = SimulatorConfig(horizon=n_requests, seed=seed, scenario=chosen.name, k=chosen.settings.slate_size,
                                    n_candidates=None if chosen.settings.candidates == "retrieval" else 100)
        click.echo(f"config: scenario {chosen.name!r}, slate size {chosen.settings.slate_size}, "
                   f"{chosen.settings.policy.name} {chosen.settings.policy.params or '(defaults)'}")
    _, report = run_demo(out, encoder, names, experiment, simulator, dim, seed, chosen)
    click.echo(f"report: {report}")


@main.command("run")
@click.argument("events", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--state", type=click.Path(path_type=Path), default=Path(".data/embedded"), show_default=True,
              help="rocksdict directory of the learned state (kept between runs).")
@click.option("--slates", "slates_out", type=click.Path(path_type=Path), default=None,
              help="Write the slates answered to this JSON-lines file.")
@click.option("--policy", default=None, type=click.Choice(list(POLICIES)),
              help="The policy of every scenario when no configuration is given  [default: linear_ts]")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help=CONFIG_HELP)
@click.option("--encoder", "encoder_kind", type=click.Choice(["auto", "onnx", "hashing"]), default="auto",
              show_default=True)
@click.option("--dim", type=int, default=32, show_default=True)
@click.option("--batch-size", type=int, default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def run_events(events: Path, state: Path, slates_out: Path | None, policy: str | None, config_path: Path | None,
               encoder_kind: str, dim: int, batch_size: int, seed: int) -> None:
    """Feed a JSON-lines EVENTS file through the embedded engine (no Kafka), serving the
    scenarios of the configuration (default: one scenario with --policy)."""
    import numpy as np

    from online.catalog import Catalog
    from online.config import PolicyConfig, ScenarioConfig, SlatestreamConfig
    from online.events import EventDecodeError, decode_event, encode_event
    from online.runner import EmbeddedRunner
    from online.scenarios import ScenarioRouter
    from streams.demo import make_embed
    from streams.rocks_store import RocksDictStore

    if policy is not None and (config_path is not None or os.environ.get("SLATESTREAM_CONFIG")):
        raise click.UsageError("--policy and a configuration file both set the policy: give one of them")
    if policy is not None:
        config = SlatestreamConfig(scenarios={"default": ScenarioConfig(policy=PolicyConfig(name=policy))},
                                   fallback_scenario="default")
    else:
        config = _config(config_path)
    encoder = _encoder(encoder_kind, None)
    decoded = []
    bad_lines = 0
    with events.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                decoded.append(decode_event(line))
            except EventDecodeError as error:
                bad_lines += 1
                click.echo(f"{events}:{number}: rejected: {error}", err=True)
    items = [event for event in decoded if event.type == "item"]
    embed = make_embed(encoder, dim, items, seed) if items else (lambda batch: np.zeros((0, dim), np.float32))
    store = RocksDictStore(state)
    out = slates_out.open("wb") if slates_out else None
    try:
        engine = ScenarioRouter(config, store, Catalog(dim=dim), np.random.default_rng(seed))
        runner = EmbeddedRunner(
            engine, embed, emit=(lambda slate: out.write(encode_event(slate) + b"\n")) if out else None,
            reject=lambda event, reason: click.echo(f"rejected {event.type}: {reason}", err=True),
            batch_size=batch_size,
        )
        counts = runner.run(decoded)
    finally:
        store.close()
        if out:
            out.close()
    click.echo(f"events: {counts.seen + bad_lines} in = {counts.ranked} ranked + {counts.learned} learned + "
               f"{counts.items} items + {counts.ignored} ignored + {counts.rejected + bad_lines} rejected")


@main.command("worker")
@click.option("--policy", default=None, type=click.Choice(list(POLICIES)),
              help="The policy of every scenario when no configuration is given  [default: linear_ts]")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help=CONFIG_HELP)
@click.option("--encoder", "encoder_kind", type=click.Choice(["hashing", "onnx"]), default="hashing",
              show_default=True, help="hashing: text hashing at --dim; onnx: BERT/ONNX plus --projection.")
@click.option("--projection", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A fitted PCA projection (encoders) from the ONNX model's dimension to --dim.")
@click.option("--dim", type=int, default=32, show_default=True)
@click.option("--n-draws", type=int, default=None,
              help="Monte Carlo draws per slate when no configuration is given  [default: 64]")
@click.option("--batch-size", type=int, default=8_000, show_default=True,
              help="Most impressions, clicks and control records learned in one batch (under a backlog, "
                   "a partition's share holds the event loop ~50 us per record).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--loglevel", default="info", show_default=True)
def worker_command(policy: str | None, config_path: Path | None, encoder_kind: str, projection: Path | None, dim: int,
                   n_draws: int | None, batch_size: int, seed: int, loglevel: str) -> None:
    """Run a streaming worker (settings from SLATESTREAM_* environment variables; scenarios and
    policies from --config / $SLATESTREAM_CONFIG, else one scenario with --policy)."""
    from encoders.hashing import HashingEncoder
    from streams.settings import StreamSettings
    from streams.worker import WorkerConfig, run_worker

    settings = StreamSettings()
    if encoder_kind == "hashing":
        encoder = HashingEncoder(dim=dim)

        def embed(items):  # type: ignore[no-untyped-def]
            return encoder.encode([item.text() for item in items])
    else:
        if projection is None:
            raise click.BadParameter("--encoder onnx needs --projection (fit one with `slatestream encoders`)")
        from encoders.projection import PcaProjection

        onnx = _encoder("onnx", None)
        pca = PcaProjection.from_bytes(projection.read_bytes())

        def embed(items):  # type: ignore[no-untyped-def]
            return pca.transform(onnx.encode([item.text() for item in items]))
    scenarios = None
    if config_path is not None or os.environ.get("SLATESTREAM_CONFIG"):
        if policy is not None or n_draws is not None:
            raise click.UsageError("--policy/--n-draws and a configuration file both set them: give one of them")
        scenarios = _config(config_path)
    config = WorkerConfig(policy=policy or "linear_ts", dim=dim, n_draws=n_draws or 64, batch_size=batch_size,
                          seed=seed, config=scenarios)
    run_worker(settings, config, embed, loglevel)


def _mount_commands() -> None:
    """Commands that live beside the code they drive."""
    from encoders.cli import encoders_group
    from streams.evaluate import evaluate_command
    from streams.forget import forget_command
    from streams.replay import replay_command

    for command in (encoders_group, evaluate_command, replay_command, forget_command):
        main.add_command(command)


_mount_commands()

if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
