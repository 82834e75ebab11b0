"""Items -> bandit vectors: the one embedding step every runner calls (worker, demo, run,
evaluate, sweep, benchmarks, a library user driving `online.engine.Engine`).

    encoder = open_encoder("bert")                       # BERT/ONNX, exported on first use
    embed = ItemEmbedding.fitted(encoder, dim=32, fit_items=catalog, seed=0)
    vectors = embed(items)                               # float32[len(items), 32], unit rows

An `ItemEmbedding` is an encoder, optionally behind an embedding cache (texts embedded once,
keyed by the encoder's fingerprint), then a projection from the encoder's width D to the
bandit's d when D > d (a `PcaProjection`, fitted on a catalogue sample or loaded from a file),
then unit rows. Errors are plain (`EncoderUnavailableError`, ValueError); callers turn them
into their own (the command line into click errors).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from encoders.base import Encoder
from encoders.cache import CachedEncoder, EmbeddingCache
from encoders.hashing import HashingEncoder
from encoders.projection import PcaProjection
from online.events import Item

EncoderKind = Literal["bert", "hashing"]
Device = Literal["auto", "cpu", "cuda"]
HASHING_DIM = 256
"""Width of the hashing encoder (projected to the bandit's d like a sentence encoder)."""


class EncoderUnavailableError(ValueError):
    """The encoder asked for cannot be opened (no model file, no ONNX Runtime, no GPU)."""


def open_encoder(kind: EncoderKind = "bert", model: Path | None = None, *, device: Device = "auto",
                 int8: bool = False, progress: Callable[[str], None] | None = None) -> Encoder:
    """The text encoder of `kind`: "bert" (ONNX Runtime over the exported all-MiniLM-L6-v2: `model`,
    else the bundled model, exported on first use into the per-user cache, `encoders.model_cache`;
    `int8`: its int8 variant; `device`: "cuda" (an error without a usable GPU), "cpu", or "auto",
    CUDA when present) or "hashing" (`HashingEncoder(HASHING_DIM)`, no model)."""
    if kind == "hashing":
        return HashingEncoder(dim=HASHING_DIM)
    if kind != "bert":
        raise ValueError(f"encoder must be bert or hashing, got {kind!r}")
    try:
        from encoders.model_cache import exported_model
        from encoders.onnx_encoder import OnnxEncoder
    except ImportError as error:  # pragma: no cover - only without onnxruntime
        raise EncoderUnavailableError(f"the ONNX encoder is unavailable: {error}") from error
    if model is not None and not model.is_file():
        raise EncoderUnavailableError(f"no ONNX model at {model}")
    try:
        path = model or exported_model(int8=int8, progress=progress)
        return OnnxEncoder(path, providers=device)
    except (FileNotFoundError, RuntimeError) as error:
        raise EncoderUnavailableError(str(error)) from error


def item_texts(items: Sequence[Item]) -> list[str]:
    """What the encoder reads of each item (`Item.text()`: its fields joined)."""
    return [item.text() for item in items]


class ItemEmbedding:
    """Catalogue items -> unit bandit vectors float32[n, dim] (see the module doc).

    Args:
        encoder: texts -> float32[n, D] unit embeddings.
        dim: the bandit's item dimension d.
        projection: float32[n, D] -> float32[n, d]; required when D > d, refused when D < d
            (D == d: the encoder's vectors are used as they are).
        cache_dir: a RocksDB embedding cache directory (kept between runs) in front of the
            encoder, or None. A hashing encoder is never cached (hashing is cheaper than a lookup).
    """

    def __init__(self, encoder: Encoder, dim: int, projection: PcaProjection | None = None,
                 cache_dir: Path | None = None) -> None:
        if encoder.dim < dim:
            raise ValueError(f"encoder dim {encoder.dim} < bandit dim {dim}")
        if encoder.dim > dim and projection is None:
            raise ValueError(f"encoder dim {encoder.dim} > bandit dim {dim}: a projection is needed (fit one)")
        if projection is not None and (projection.input_dim, projection.dim) != (encoder.dim, dim):
            raise ValueError(f"projection maps {projection.input_dim} -> {projection.dim}, "
                             f"the embedding needs {encoder.dim} -> {dim}")
        self.dim = dim
        self._texts: dict[str, npt.NDArray[np.float32]] = {}
        self.projection = projection if encoder.dim > dim else None
        self._cache: EmbeddingCache | None = None
        if cache_dir is not None and not isinstance(encoder, HashingEncoder):
            self._cache = EmbeddingCache(cache_dir)
            encoder = CachedEncoder(encoder, self._cache)
        self.encoder = encoder

    @classmethod
    def fitted(cls, encoder: Encoder, dim: int, fit_items: Sequence[Item], seed: int,
               cache_dir: Path | None = None) -> ItemEmbedding:
        """An embedding whose projection (when the encoder is wider than `dim`) is a PCA fitted
        on `fit_items`' embeddings with `seed`."""
        embedding = cls(encoder, encoder.dim, cache_dir=cache_dir)
        if encoder.dim > dim:
            embedding.projection = PcaProjection.fit(embedding.encode_texts(item_texts(fit_items)), dim, seed)
            embedding.dim = dim
        elif encoder.dim < dim:
            embedding.close()
            raise ValueError(f"encoder dim {encoder.dim} < bandit dim {dim}")
        return embedding

    def refitted(self, fit_items: Sequence[Item], seed: int) -> ItemEmbedding:
        """An embedding sharing this one's (cached) encoder, its projection fitted anew on
        `fit_items` with `seed` (closing it leaves the shared cache open)."""
        sibling = ItemEmbedding(self.encoder, self.encoder.dim)
        if self.encoder.dim > self.dim:
            sibling.projection = PcaProjection.fit(sibling.encode_texts(item_texts(fit_items)), self.dim, seed)
            sibling.dim = self.dim
        return sibling

    @property
    def name(self) -> str:
        """The encoder's name, e.g. "all-MiniLM-L6-v2" or "hashing"."""
        return self.encoder.name

    @property
    def version(self) -> str:
        """What the vectors depend on: the encoder's fingerprint, d and the projection's version
        (names the learned state: another version means other item vectors)."""
        projected = self.projection.version if self.projection is not None else "none"
        return f"{self.encoder.fingerprint}/d{self.dim}/pca-{projected}"

    @property
    def device(self) -> str:
        """Where the encoder runs: an ONNX Runtime execution provider, or "cpu"."""
        inner = getattr(self.encoder, "encoder", self.encoder)  # a CachedEncoder wraps the encoder
        providers = getattr(inner, "providers", None)
        return str(providers[0]) if providers else "cpu"

    @property
    def description(self) -> str:
        """One line: encoder, its width, the projection to d, the device."""
        projected = f"PCA {self.projection.version}" if self.projection is not None else "no projection"
        return f"{self.encoder.name} (D={self.encoder.dim}) -> d={self.dim} ({projected}) on {self.device}"

    def encode_texts(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """float32[n, D] unit embeddings of texts, before the projection (cached when a cache is set)."""
        return self.encoder.encode(texts)

    def __call__(self, items: Sequence[Item]) -> npt.NDArray[np.float32]:
        """float32[len(items), dim] unit bandit vectors of the items' texts."""
        vectors = self.encode_texts(item_texts(items))
        return vectors if self.projection is None else self.projection.transform(vectors)

    def text(self, text: str) -> npt.NDArray[np.float32]:
        """float32[dim]: a free text (a request's query) in the items' space, as an item of that
        text would be embedded; the last 4,096 texts are remembered."""
        found = self._texts.get(text)
        if found is None:
            vector = self.encode_texts([text])
            found = vector[0] if self.projection is None else self.projection.transform(vector)[0]
            self._texts[text] = found
            if len(self._texts) > 4096:
                del self._texts[next(iter(self._texts))]
        return found

    def close(self) -> None:
        """Close the embedding cache, if any (idempotent)."""
        if self._cache is not None:
            self._cache.close()
            self._cache = None
