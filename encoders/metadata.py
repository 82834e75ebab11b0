"""The JSON written beside every exported .onnx file (no onnx/ORT imports here)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from encoders.models import Pooling

FORMAT_VERSION = 1
VARIANTS = ("fp32", "int8", "fp16")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def metadata_path(onnx_path: Path) -> Path:
    """model.onnx -> model.json, model.int8.onnx -> model.int8.json."""
    return onnx_path.with_suffix(".json")


@dataclass(frozen=True)
class ModelMetadata:
    """What an exported model computes and how well a variant agrees with fp32.

    Attributes:
        name: model name, e.g. "all-MiniLM-L6-v2".
        dim: embedding width D.
        pooling: pooling applied inside the graph (output rows are L2-normalised).
        max_length: truncation length in tokens.
        sha256: checksum of the .onnx file this metadata describes.
        variant: "fp32", "int8" (dynamic, per-channel) or "fp16".
        input_names: graph inputs, e.g. ["input_ids", "attention_mask", "token_type_ids"].
        output_name: graph output, float32[batch, D].
        opset: ONNX opset of the export.
        pad_token_id: the tokenizer's padding id.
        base_sha256: checksum of the fp32 model a variant was derived from (None for fp32).
        min_cosine_to_fp32 / mean_cosine_to_fp32: agreement of the variant with fp32 on
            `agreement_texts` texts (None for fp32).
        min_cosine_required: the threshold the variant passed (None for fp32).
        extra: free-form provenance (source directory, library versions, creation time).
    """

    name: str
    dim: int
    pooling: Pooling
    max_length: int
    sha256: str
    variant: str = "fp32"
    input_names: tuple[str, ...] = ("input_ids", "attention_mask", "token_type_ids")
    output_name: str = "sentence_embedding"
    opset: int = 17
    pad_token_id: int = 0
    base_sha256: str | None = None
    min_cosine_to_fp32: float | None = None
    mean_cosine_to_fp32: float | None = None
    min_cosine_required: float | None = None
    agreement_texts: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.dim < 1 or self.max_length < 1:
            raise ValueError(f"dim and max_length must be >= 1, got {self.dim}, {self.max_length}")

    def to_json(self) -> str:
        """Versioned, human-readable JSON."""
        data: dict[str, Any] = {"format_version": FORMAT_VERSION, **self.__dict__}
        data["pooling"] = self.pooling.to_dict()
        data["input_names"] = list(self.input_names)
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelMetadata:
        """Parse `to_json` output; rejects unknown format versions."""
        data = json.loads(text)
        version = data.pop("format_version", None)
        if version != FORMAT_VERSION:
            raise ValueError(f"format_version must be {FORMAT_VERSION}, got {version!r}")
        data["pooling"] = Pooling.from_dict(data["pooling"])
        data["input_names"] = tuple(data["input_names"])
        return cls(**data)

    def write(self, onnx_path: Path) -> Path:
        """Write beside `onnx_path`; returns the JSON path."""
        path = metadata_path(onnx_path)
        path.write_text(self.to_json() + "\n")
        return path

    @classmethod
    def read(cls, onnx_path: Path) -> ModelMetadata:
        """Read the JSON beside `onnx_path`."""
        path = metadata_path(onnx_path)
        if not path.is_file():
            raise FileNotFoundError(f"no metadata {path} beside {onnx_path}: export with `slatestream encoders export`")
        return cls.from_json(path.read_text())
