"""The `Encoder` protocol every text encoder satisfies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt


@runtime_checkable
class Encoder(Protocol):
    """Maps texts to L2-normalised embeddings.

    Attributes:
        name: human-readable model name, e.g. "all-MiniLM-L6-v2".
        dim: embedding width D.
        fingerprint: checksum of everything that changes the output (weights, config);
            two encoders with equal fingerprints give equal embeddings.
    """

    name: str
    dim: int
    fingerprint: str

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed texts: returns float32[len(texts), dim], each row of unit L2 norm."""
        ...
