"""PyTorch side: a BERT-family model with pooling + L2 normalisation in its forward pass.

The same module is exported to ONNX (encoders.export) and run eagerly as the reference
(`TorchEncoder`, used by the parity test and the throughput benchmark). Imports torch and
transformers at module level: import this module lazily.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from encoders.batching import l2_normalise, length_buckets, pad_batch
from encoders.models import Pooling, model_name, read_pooling, set_offline
from encoders.tokenizer import load_fast_tokenizer


def pool(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Pool token vectors float[b, L, D] under mask int64[b, L] into float[b, D]."""
    if mode == "cls":
        return hidden[:, 0]
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "max":
        return hidden.masked_fill(weights == 0, -1e4).max(dim=1).values
    summed = (hidden * weights).sum(dim=1)
    counts = weights.sum(dim=1).clamp(min=1e-9)
    if mode == "mean":
        return summed / counts
    if mode == "mean_sqrt_len":
        return summed / counts.sqrt()
    raise ValueError(f"unknown pooling mode {mode!r}")


class PooledModel(torch.nn.Module):
    """transformer -> pooling -> L2 normalise; forward returns float32[b, D] unit rows."""

    config: Any

    def __init__(self, transformer: Any, pooling: Pooling, use_token_type_ids: bool) -> None:
        super().__init__()
        self.transformer = transformer
        self.config = transformer.config
        self.mode = pooling.mode
        self.use_token_type_ids = use_token_type_ids

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        kwargs: dict[str, torch.Tensor] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.use_token_type_ids and token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        hidden = self.transformer(**kwargs)[0]
        return F.normalize(pool(hidden, attention_mask, self.mode), p=2.0, dim=1)


def load_pooled_model(model_dir: Path) -> tuple[PooledModel, Any, Pooling]:
    """(eval-mode PooledModel on CPU, fast tokenizer, pooling) for a local model directory."""
    set_offline()
    from transformers import AutoModel

    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"model_dir {model_dir} has no config.json")
    transformer = AutoModel.from_pretrained(str(model_dir), local_files_only=True, attn_implementation="eager")
    transformer.eval()
    tokenizer = load_fast_tokenizer(model_dir)
    pooling = read_pooling(model_dir)
    accepts_types = "token_type_ids" in inspect.signature(transformer.forward).parameters
    use_types = accepts_types and "token_type_ids" in tokenizer.model_input_names
    return PooledModel(transformer, pooling, use_types).eval(), tokenizer, pooling


class TorchEncoder:
    """Eager PyTorch reference encoder (CPU), same pooling and bucketing as `OnnxEncoder`.

    Args:
        model_dir: local Hugging Face model directory.
        max_length: truncation length in tokens.
        batch_size: texts per forward pass (16, as `OnnxEncoder`).
    """

    def __init__(self, model_dir: Path, max_length: int = 256, batch_size: int = 16) -> None:
        self.model, self.tokenizer, self.pooling = load_pooled_model(Path(model_dir))
        self.name = model_name(Path(model_dir))
        self.max_length = max_length
        self.batch_size = batch_size
        self.dim = int(self.model.config.hidden_size)
        weights = Path(model_dir) / "model.safetensors"
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16] if weights.is_file() else "unknown"
        self.fingerprint = f"torch-{digest}-{self.pooling.mode}-L{max_length}"

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed texts: float32[len(texts), dim], unit rows, in input order."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        ids = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]
        with torch.inference_mode():
            for positions in length_buckets([len(i) for i in ids], self.batch_size):
                input_ids, mask = pad_batch(ids, positions, int(self.tokenizer.pad_token_id or 0))
                tensors = torch.from_numpy(input_ids), torch.from_numpy(mask)
                emb = self.model(*tensors, torch.zeros_like(tensors[0]))
                out[positions] = emb.float().numpy()
        return l2_normalise(out)
