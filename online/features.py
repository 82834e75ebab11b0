"""Feature maps: item vectors (and optional request context) -> bandit feature vectors.

`ItemFeatures` gives x = [v, 1] (the item vector plus a bias term). `ContextCrossFeatures`
gives x = [v, 1] (outer) [1, c_1..c_m]: the item vector, the context, and their products,
so a single linear model personalises by context on datasets without user ids (OBD).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


class FeatureMap(Protocol):
    """Builds float64[n, D] features (or float32, when asked: a policy that scores in single
    precision) from float32[n, d] item vectors and a context."""

    def dim(self, item_dim: int) -> int:
        """D for item vectors of width d."""
        ...

    def transform(
        self, item_vectors: npt.NDArray[np.float32], context: Mapping[str, float] | None,
        dtype: type[np.floating] = np.float64,
    ) -> FloatArray:
        """Features of n items in one request's context: [n, D] in `dtype`."""
        ...


@dataclass(frozen=True)
class ItemFeatures:
    """x = [v, 1]: item vector plus bias (D = d + 1). Context is ignored."""

    def dim(self, item_dim: int) -> int:
        return item_dim + 1

    def transform(
        self, item_vectors: npt.NDArray[np.float32], context: Mapping[str, float] | None,
        dtype: type[np.floating] = np.float64,
    ) -> FloatArray:
        n = item_vectors.shape[0]
        out: FloatArray = np.empty((n, item_vectors.shape[1] + 1), dtype)
        out[:, :-1] = item_vectors
        out[:, -1] = 1.0
        return out


@dataclass(frozen=True)
class ContextCrossFeatures:
    """x = vec([v, 1] outer [1, c]) over the named context keys (D = (d + 1)(m + 1)).

    Missing context keys count as 0. `scale` multiplies the context values.
    """

    keys: tuple[str, ...]
    scale: float = 1.0

    def dim(self, item_dim: int) -> int:
        return (item_dim + 1) * (len(self.keys) + 1)

    def transform(
        self, item_vectors: npt.NDArray[np.float32], context: Mapping[str, float] | None,
        dtype: type[np.floating] = np.float64,
    ) -> FloatArray:
        base = ItemFeatures().transform(item_vectors, None)
        values = [1.0] + [self.scale * float((context or {}).get(key, 0.0)) for key in self.keys]
        crossed: FloatArray = np.einsum("nd,m->ndm", base, np.asarray(values)).reshape(base.shape[0], -1)
        return crossed.astype(dtype, copy=False)
