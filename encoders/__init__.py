"""Text encoders: item texts -> float32 embeddings (BERT via ONNX, or a hashing fallback).

Importing this package is cheap: torch, transformers and onnxruntime are imported only
inside the functions and classes that need them (and encoders.torch_model /
encoders.scoring_torch, which are never imported from here).
"""

from encoders.base import Encoder
from encoders.cache import CachedEncoder, EmbeddingCache, MemoryEmbeddingCache
from encoders.export import ExportedModel, VariantRejectedError, export_onnx
from encoders.hashing import HashingEncoder
from encoders.metadata import ModelMetadata
from encoders.microbatch import MicroBatcher
from encoders.onnx_encoder import OnnxEncoder, default_model_path
from encoders.projection import PcaProjection
from encoders.scoring import NumpyScorer, Scorer, make_scorer

__all__ = [
    "CachedEncoder",
    "EmbeddingCache",
    "Encoder",
    "ExportedModel",
    "HashingEncoder",
    "MemoryEmbeddingCache",
    "MicroBatcher",
    "ModelMetadata",
    "NumpyScorer",
    "OnnxEncoder",
    "PcaProjection",
    "Scorer",
    "VariantRejectedError",
    "default_model_path",
    "export_onnx",
    "make_scorer",
]
