"""A deterministic text-hashing encoder: fast, dependency-free, for tests and fallbacks.

Tokens (lower-cased words and word bigrams) are hashed with BLAKE2b into `dim` signed
buckets (the "hashing trick"); the bag is L2-normalised. Texts sharing words get close
vectors, so attribute words in item texts become linear features a bandit can learn.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from itertools import pairwise

import numpy as np
import numpy.typing as npt

_TOKEN = re.compile(r"[a-z0-9]+")


class HashingEncoder:
    """Signed feature hashing of unigrams and bigrams.

    Args:
        dim: output width D (>= 2).
        seed: salt of the hash; different seeds give independent projections.
        bigram_weight: weight of bigram tokens relative to unigrams.
    """

    name = "hashing"

    def __init__(self, dim: int = 64, seed: int = 0, bigram_weight: float = 0.5) -> None:
        if dim < 2:
            raise ValueError(f"dim must be >= 2, got {dim}")
        self.dim = dim
        self.seed = seed
        self.bigram_weight = bigram_weight
        self.fingerprint = f"hashing-v1-d{dim}-s{seed}-b{bigram_weight}"
        self._salt = seed.to_bytes(8, "little", signed=False)
        self._cache: dict[str, tuple[int, float]] = {}

    def _bucket(self, token: str) -> tuple[int, float]:
        hit = self._cache.get(token)
        if hit is None:
            digest = hashlib.blake2b(token.encode(), digest_size=8, key=self._salt).digest()
            value = int.from_bytes(digest, "little")
            hit = (value % self.dim, 1.0 if (value >> 63) & 1 else -1.0)
            self._cache[token] = hit
        return hit

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed texts: float32[len(texts), dim], unit L2 norm (zero rows for empty texts)."""
        out = np.zeros((len(texts), self.dim), dtype=np.float64)
        for row, text in enumerate(texts):
            words = _TOKEN.findall(text.lower())
            for word in words:
                col, sign = self._bucket(word)
                out[row, col] += sign
            for left, right in pairwise(words):
                col, sign = self._bucket(f"{left}_{right}")
                out[row, col] += sign * self.bigram_weight
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out.astype(np.float32)
