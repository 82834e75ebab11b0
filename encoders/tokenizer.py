"""Tokenizers, local files only.

`load_fast_tokenizer` is transformers.AutoTokenizer (used where torch is loaded anyway:
export and the PyTorch reference). `TokenizerJson` runs the same Rust fast tokenizer from
the directory's tokenizer.json through the `tokenizers` package directly: importing
transformers' tokenizers pulls in torch (10-25 s on a 2-core machine), which a CPU serving
process running ONNX should not pay. tests/encoders/test_onnx.py checks both give equal ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from encoders.models import set_offline


def load_fast_tokenizer(model_dir: Path) -> Any:
    """AutoTokenizer.from_pretrained(model_dir, local_files_only=True, use_fast=True).

    Raises:
        ValueError: when the directory has no fast tokenizer.
    """
    set_offline()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True, use_fast=True)
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{model_dir}: a fast tokenizer (tokenizer.json) is required")
    return tokenizer


class TokenizerJson:
    """The fast tokenizer in `model_dir/tokenizer.json`: texts -> token ids, no padding.

    Args:
        model_dir: directory holding tokenizer.json (an export writes one beside the .onnx).
        max_length: truncation length in tokens, special tokens included.
        pad_token_id: id used to pad batches (the export records it in the metadata).
    """

    def __init__(self, model_dir: Path, max_length: int, pad_token_id: int) -> None:
        from tokenizers import Tokenizer

        path = Path(model_dir) / "tokenizer.json"
        if not path.is_file():
            raise FileNotFoundError(f"no tokenizer.json in {model_dir}")
        self._tokenizer = Tokenizer.from_file(str(path))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length)
        self.pad_token_id = pad_token_id

    def __call__(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text (with [CLS]/[SEP]-style special tokens), truncated, unpadded."""
        return [list(e.ids) for e in self._tokenizer.encode_batch(list(texts), add_special_tokens=True)]
