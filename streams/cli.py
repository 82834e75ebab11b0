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


@click.group()
def main() -> None:
    """slatestream: a streaming, online-learning slate recommender."""


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
def demo(out: Path, n_requests: int, policies: str, encoder_kind: str, model: Path | None,
         dim: int, learn_every: int, seed: int) -> None:
    """Run every policy through the simulator and write a report to OUT."""
    from online.simulation import SimulatorConfig

    from streams.demo import run_demo

    names = [name.strip() for name in policies.split(",") if name.strip()]
    unknown = [name for name in names if name not in POLICIES]
    if unknown:
        raise click.BadParameter(f"unknown policies {unknown}; known: {list(POLICIES)}")
    encoder = _encoder(encoder_kind, model)
    click.echo(f"encoder: {encoder.name} (D={encoder.dim}) -> d={dim}; state: rocksdict under {out}/state")
    experiment = ExperimentConfig(n_requests=n_requests, learn_every=learn_every)
    simulator = SimulatorConfig(horizon=n_requests, seed=seed)
    _, report = run_demo(out, encoder, names, experiment, simulator, dim, seed)
    click.echo(f"report: {report}")


def _mount_optional_groups() -> None:
    try:
        from encoders.cli import encoders_group
    except ImportError:
        return
    main.add_command(encoders_group)


_mount_optional_groups()

if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
