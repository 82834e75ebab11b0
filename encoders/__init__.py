"""Text encoders: item texts -> float32 embeddings (BERT via ONNX, or a hashing fallback)."""

from encoders.base import Encoder
from encoders.hashing import HashingEncoder

__all__ = ["Encoder", "HashingEncoder"]
