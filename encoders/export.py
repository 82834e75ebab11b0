"""Export a local BERT-family model to ONNX (+ optional int8 / fp16 variants) with metadata.

`export_onnx(model_dir, out_dir)` writes into out_dir:
    model.onnx / model.json            fp32, pooling + L2 normalisation inside the graph (attention
                                       fused by ORT's transformer optimizer when fuse_attention=True)
    model.int8.onnx / model.int8.json  dynamic int8, per-channel weights (8 or 7 bits by the CPU's
                                       int8 instructions), smoothed LayerNorm outputs, when int8=True
    model.fp16.onnx / model.fp16.json  fp16 weights and compute (fp32 inputs/outputs), when fp16=True
    tokenizer.json, tokenizer_config.json, ...  the model's fast tokenizer
Each variant's min cosine to fp32 on `AGREEMENT_TEXTS` is measured and recorded; a variant
below `min_cosine` is deleted and `VariantRejectedError` raised. Never touches the network.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from encoders.batching import length_buckets, pad_batch
from encoders.graph import optimize_transformer
from encoders.metadata import ModelMetadata, sha256_file
from encoders.models import default_model_dir, model_name, set_offline
from encoders.texts import AGREEMENT_TEXTS, CALIBRATION_TEXTS

log = logging.getLogger(__name__)
OPSET = 17
DEFAULT_MIN_COSINE = 0.98


class VariantRejectedError(ValueError):
    """A quantised/half-precision variant agrees with fp32 less than required."""


@dataclass(frozen=True)
class ExportedModel:
    """Result of `export_onnx`.

    Attributes:
        out_dir: the output directory.
        onnx_path: the fp32 model.
        metadata: the fp32 model's metadata (also in onnx_path.with_suffix(".json")).
        variants: variant name ("int8", "fp16") -> its .onnx path (metadata beside it).
    """

    out_dir: Path
    onnx_path: Path
    metadata: ModelMetadata
    variants: Mapping[str, Path] = field(default_factory=dict)


def export_onnx(
    model_dir: str | Path | None,
    out_dir: str | Path,
    max_length: int = 256,
    *,
    int8: bool = False,
    fp16: bool = False,
    min_cosine: float = DEFAULT_MIN_COSINE,
    opset: int = OPSET,
    fuse_attention: bool = False,
) -> ExportedModel:
    """Export `model_dir` (None: the bundled all-MiniLM-L6-v2) to ONNX in `out_dir`.

    Args:
        model_dir: local Hugging Face model directory (config.json, weights, tokenizer.json).
        out_dir: output directory (created).
        max_length: truncation length in tokens (capped at the model's max positions).
        int8: also write a dynamic int8 variant (per-channel weight scales; see encoders.quantize).
        fp16: also write an fp16 variant.
        min_cosine: required min cosine of a variant to fp32 on the fixed text set.
        opset: ONNX opset.
        fuse_attention: rewrite the graph with ORT's transformer optimizer (one `Attention`
            op per layer, `EmbedLayerNormalization`; ORT-only contrib ops). Off by default:
            measured 3-10% slower on CPU than the bare graph, which ORT fuses itself at load
            (layer norm, GELU) (docs/encoders.md).

    Returns:
        The exported model (paths + metadata).

    Raises:
        FileNotFoundError: model_dir has no config.json.
        VariantRejectedError: a variant's agreement is below `min_cosine` (fp32 is kept).
    """
    source = Path(model_dir) if model_dir is not None else default_model_dir()
    out = Path(out_dir)
    if not (source / "config.json").is_file():
        raise FileNotFoundError(f"model_dir {source} has no config.json")
    if not 0.0 < min_cosine <= 1.0:
        raise ValueError(f"min_cosine must be in (0, 1], got {min_cosine}")
    if max_length < 2:
        raise ValueError(f"max_length must be >= 2, got {max_length}")
    set_offline()
    import torch

    from encoders.torch_model import load_pooled_model

    model, tokenizer, pooling = load_pooled_model(source)
    config = model.config
    max_length = min(max_length, int(getattr(config, "max_position_embeddings", max_length)))
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / "model.onnx"
    plain_path = out / "model.plain.onnx" if fuse_attention else onnx_path  # the bare torch export
    try:
        names = _trace(model, tokenizer, plain_path, opset)
        extra: dict[str, Any] = {
            "source_model_dir": str(source.resolve()),
            "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "torch": torch.__version__,
        }
        if fuse_attention:
            extra["fused_operators"] = optimize_transformer(
                plain_path, onnx_path, int(config.num_attention_heads), int(config.hidden_size))
        tokenizer.save_pretrained(str(out))
        metadata = ModelMetadata(
            name=model_name(source), dim=int(config.hidden_size), pooling=pooling, max_length=max_length,
            sha256=sha256_file(onnx_path), input_names=tuple(names), opset=opset,
            pad_token_id=int(tokenizer.pad_token_id or 0), extra=extra,
        )
        metadata.write(onnx_path)
        variants = {variant: _write_variant(onnx_path, plain_path, metadata, variant, min_cosine)
                    for variant, wanted in (("int8", int8), ("fp16", fp16)) if wanted}
    finally:
        if fuse_attention:
            plain_path.unlink(missing_ok=True)
    return ExportedModel(out_dir=out, onnx_path=onnx_path, metadata=metadata, variants=variants)


def _trace(model: Any, tokenizer: Any, path: Path, opset: int) -> list[str]:
    """torch.onnx.export of the pooled model to `path`; returns the graph's input names."""
    import torch

    # Trace with padding present so the masked path is the one recorded.
    sample = tokenizer(["a short text", "a somewhat longer text for the traced example"], padding=True,
                       return_tensors="pt")
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if model.use_token_type_ids else [])
    args = tuple(sample[name] if name in sample else torch.zeros_like(sample["input_ids"]) for name in names)
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    axes["sentence_embedding"] = {0: "batch"}
    # The tracer warns about transformers' mask helpers (shape arithmetic that is constant
    # for right-padded inputs); tests/encoders/test_onnx.py checks dynamic shapes and parity.
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit._trace.TracerWarning)
        warnings.filterwarnings("ignore", message="Exporting aten::index operator")
        torch.onnx.export(
            model, args, str(path), dynamo=False, input_names=names, output_names=["sentence_embedding"],
            dynamic_axes=axes, opset_version=opset, do_constant_folding=True,
        )
    return names


def calibration_feeds(
    tokenizer_dir: Path, metadata: ModelMetadata, batch_size: int = 16
) -> list[dict[str, npt.NDArray[np.int64]]]:
    """`CALIBRATION_TEXTS` as length-bucketed session inputs (the encoder's own tokenizer)."""
    from encoders.tokenizer import TokenizerJson

    ids = TokenizerJson(tokenizer_dir, metadata.max_length, metadata.pad_token_id)(CALIBRATION_TEXTS)
    feeds = []
    for positions in length_buckets([len(i) for i in ids], batch_size):
        input_ids, mask = pad_batch(ids, positions, metadata.pad_token_id)
        feed = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}
        feeds.append({name: feed[name] for name in metadata.input_names})
    return feeds


def _write_variant(onnx_path: Path, plain_path: Path, metadata: ModelMetadata, variant: str,
                   min_cosine: float) -> Path:
    path = onnx_path.with_name(f"model.{variant}.onnx")
    extra = dict(metadata.extra)
    if variant == "int8":
        from encoders.quantize import quantize_int8

        settings = quantize_int8(onnx_path, path, calibration_feeds(onnx_path.parent, metadata))
        extra["int8"] = settings.to_dict()
    else:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        # From the bare graph: a fused graph's contrib ops have no fp16 CPU kernels.
        half = convert_float_to_float16(onnx.load(str(plain_path)), keep_io_types=True)
        onnx.save(half, str(path))
        extra.pop("fused_operators", None)
    agreement = measure_agreement(onnx_path, path, metadata, variant)
    minimum, mean = agreement
    if minimum < min_cosine:
        path.unlink()
        raise VariantRejectedError(
            f"{variant} variant rejected: min cosine to fp32 {minimum:.5f} < min_cosine {min_cosine} "
            f"on {len(AGREEMENT_TEXTS)} texts (fp32 model kept at {onnx_path})"
        )
    log.info("%s variant: min cosine %.5f, mean %.6f", variant, minimum, mean)
    ModelMetadata(
        **{**metadata.__dict__, "variant": variant, "sha256": sha256_file(path), "base_sha256": metadata.sha256,
           "min_cosine_to_fp32": minimum, "mean_cosine_to_fp32": mean, "min_cosine_required": min_cosine,
           "agreement_texts": len(AGREEMENT_TEXTS), "extra": extra}
    ).write(path)
    return path


def measure_agreement(
    fp32_path: Path, variant_path: Path, metadata: ModelMetadata, variant: str
) -> tuple[float, float]:
    """(min, mean) cosine between fp32 and variant embeddings of `AGREEMENT_TEXTS` on CPU."""
    from encoders.onnx_encoder import OnnxEncoder

    ModelMetadata(**{**metadata.__dict__, "variant": variant, "sha256": sha256_file(variant_path)}).write(variant_path)
    reference = OnnxEncoder(fp32_path, providers="cpu").encode(AGREEMENT_TEXTS)
    candidate = OnnxEncoder(variant_path, providers="cpu").encode(AGREEMENT_TEXTS)
    cosines = np.sum(reference * candidate, axis=1, dtype=np.float64)
    return float(cosines.min()), float(cosines.mean())
