"""What every scoring backend shares: the `Scorer` protocol and the argument checks."""

from __future__ import annotations

import threading
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
TopK = tuple[IntArray, FloatArray]


@runtime_checkable
class Scorer(Protocol):
    """Top-k inner-product search over a mutable catalogue matrix.

    Attributes:
        device: where the matrix lives: "cpu", "cuda:0", ...
        backend: "numpy" or "torch".
        n_rows / dim: current catalogue size n and width d.
    """

    device: str
    backend: str

    @property
    def n_rows(self) -> int: ...

    @property
    def dim(self) -> int: ...

    def set_matrix(self, matrix: npt.ArrayLike) -> None:
        """Replace the catalogue with float32[n, d]."""
        ...

    def update_rows(self, rows: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        """Overwrite rows int64[m] with vectors float32[m, d]; rows >= n grow the catalogue
        (they must cover n..max(rows) with no gap)."""
        ...

    def topk(self, queries: npt.ArrayLike, k: int, rows: npt.ArrayLike | None = None) -> TopK:
        """Top-k rows per query: (int64[b, k'], float32[b, k']) with k' = min(k, candidates),
        descending scores; `rows` int64[c] restricts the search to those catalogue rows."""
        ...


class CatalogShape:
    """What every scorer keeps of its catalogue's shape: n rows of width d, behind one lock."""

    def __init__(self) -> None:
        self._n = 0
        self._dim: int | None = None
        self._lock = threading.RLock()

    @property
    def n_rows(self) -> int:
        """Current catalogue size n."""
        return self._n

    @property
    def dim(self) -> int:
        """Width d (0 before any matrix is set)."""
        return self._dim or 0


def check_queries(queries: npt.ArrayLike, dim: int, k: int) -> FloatArray:
    """Validated float32[b, d] queries (k >= 1)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    q = np.asarray(queries, dtype=np.float32)
    if q.ndim != 2 or q.shape[1] != dim:
        raise ValueError(f"queries must be [b, {dim}], got shape {q.shape}")
    return q


def check_candidates(rows: npt.ArrayLike | None, n: int) -> IntArray | None:
    """Validated int64[c] candidate rows in [0, n), or None."""
    if rows is None:
        return None
    r = np.asarray(rows)
    if r.ndim != 1 or (r.size and not np.issubdtype(r.dtype, np.integer)):
        raise ValueError(f"rows must be a 1-D integer array, got dtype {r.dtype} shape {r.shape}")
    r = r.astype(np.int64, copy=False)
    if r.size and (r.min() < 0 or r.max() >= n):
        raise ValueError(f"rows must lie in [0, {n}), got range [{r.min()}, {r.max()}]")
    return r


def check_update(
    rows: npt.ArrayLike, vectors: npt.ArrayLike, n: int, dim: int | None
) -> tuple[IntArray, FloatArray, int]:
    """Validate an update; returns (rows int64[m], vectors float32[m, d], new n)."""
    r = np.asarray(rows)
    v = np.asarray(vectors, dtype=np.float32)
    if r.ndim != 1 or (r.size and not np.issubdtype(r.dtype, np.integer)):
        raise ValueError(f"rows must be a 1-D integer array, got dtype {r.dtype} shape {r.shape}")
    r = r.astype(np.int64, copy=False)
    if v.ndim != 2 or v.shape[0] != r.size or (dim is not None and v.shape[1] != dim):
        raise ValueError(f"vectors must be [{r.size}, {dim if dim is not None else 'd'}], got shape {v.shape}")
    if r.size and r.min() < 0:
        raise ValueError(f"rows must be >= 0, got {r.min()}")
    new_n = max(n, int(r.max()) + 1 if r.size else n)
    if np.unique(r[r >= n]).size != new_n - n:
        raise ValueError(f"rows growing the catalogue must cover {n}..{new_n - 1} without gaps")
    return r, v, new_n


def grown_capacity(capacity: int, needed: int) -> int:
    """Capacity after growth: doubled until it holds `needed` rows."""
    capacity = max(capacity, 16)
    while capacity < needed:
        capacity *= 2
    return capacity
