"""`slatestream encoders export`: export a local BERT-family model to ONNX (encoders.export)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from encoders.onnx_encoder import DEFAULT_OUT_DIR


@click.group(name="encoders")
def encoders_group() -> None:
    """Text encoders: export BERT-family models to ONNX."""


@encoders_group.command("export")
@click.option("--model-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Local Hugging Face model directory [default: the bundled all-MiniLM-L6-v2].")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=DEFAULT_OUT_DIR,
              show_default=True, help="Output directory (model.onnx, model.json, tokenizer files).")
@click.option("--max-length", type=int, default=256, show_default=True, help="Truncation length in tokens.")
@click.option("--int8", is_flag=True, help="Also write a dynamic int8 (per-channel) variant.")
@click.option("--fp16", is_flag=True, help="Also write an fp16 variant.")
@click.option("--min-cosine", type=float, default=0.98, show_default=True,
              help="Refuse a variant whose min cosine to fp32 on the fixed text set is lower.")
@click.option("--fuse-attention", is_flag=True,
              help="Fuse attention with ORT's transformer optimizer (ORT-only ops; slower on the CPUs measured).")
def export(model_dir: Path | None, out_dir: Path, max_length: int, int8: bool, fp16: bool, min_cosine: float,
           fuse_attention: bool) -> None:
    """Export MODEL_DIR to ONNX (dynamic batch/sequence axes, pooling + L2 norm in the graph)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from encoders.export import VariantRejectedError, export_onnx

    try:
        result = export_onnx(model_dir, out_dir, max_length, int8=int8, fp16=fp16, min_cosine=min_cosine,
                             fuse_attention=fuse_attention)
    except (FileNotFoundError, VariantRejectedError) as error:
        raise click.ClickException(str(error)) from error
    meta = result.metadata
    click.echo(f"wrote {result.onnx_path} ({meta.name}, D={meta.dim}, pooling={meta.pooling.mode}, "
               f"max_length={meta.max_length}, sha256={meta.sha256[:16]}...)")
    for variant, path in result.variants.items():
        data = json.loads(path.with_suffix(".json").read_text())
        click.echo(f"wrote {path} ({variant}: min cosine to fp32 {data['min_cosine_to_fp32']:.5f}, "
                   f"mean {data['mean_cosine_to_fp32']:.6f})")
