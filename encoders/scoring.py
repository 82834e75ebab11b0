"""Scoring backends: top-k inner products of query vectors against an item matrix.

`make_scorer("auto")` gives a `TorchScorer` on CUDA when a usable GPU is present, else a
`NumpyScorer`. Both keep a growable float matrix[n, d] (catalogue row i = item i), accept
row updates while serving (visible to the next call), and answer
`topk(queries float32[b, d], k, rows=None) -> (int64[b, k], float32[b, k])` with catalogue
rows sorted by descending score. This module imports no torch (see encoders.scoring_torch).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from encoders.device import cuda_available
from encoders.scoring_base import (
    CatalogShape,
    Scorer,
    TopK,
    check_candidates,
    check_queries,
    check_update,
    grown_capacity,
)

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

__all__ = ["NumpyScorer", "Scorer", "TopK", "make_scorer"]


class NumpyScorer(CatalogShape):
    """CPU scorer: float32 matmul (BLAS) + argpartition. Thread-safe (one lock)."""

    backend = "numpy"
    device = "cpu"

    def __init__(self) -> None:
        super().__init__()
        self._matrix: FloatArray = np.zeros((0, 0), dtype=np.float32)

    def set_matrix(self, matrix: npt.ArrayLike) -> None:
        """Replace the catalogue with float32[n, d] (copied)."""
        m = np.array(matrix, dtype=np.float32, copy=True)
        if m.ndim != 2 or m.shape[1] < 1:
            raise ValueError(f"matrix must be [n, d >= 1], got shape {m.shape}")
        with self._lock:
            self._matrix, self._n, self._dim = m, m.shape[0], m.shape[1]

    def update_rows(self, rows: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        """Overwrite/append rows (see `Scorer.update_rows`)."""
        with self._lock:
            r, v, new_n = check_update(rows, vectors, self._n, self._dim)
            if self._dim is None:
                self._dim = v.shape[1]
                self._matrix = np.zeros((0, self._dim), dtype=np.float32)
            if new_n > self._matrix.shape[0]:
                grown = np.zeros((grown_capacity(self._matrix.shape[0], new_n), self._dim), dtype=np.float32)
                grown[: self._n] = self._matrix[: self._n]
                self._matrix = grown
            self._matrix[r] = v
            self._n = new_n

    def topk(self, queries: npt.ArrayLike, k: int, rows: npt.ArrayLike | None = None) -> TopK:
        """Top-k catalogue rows per query (see `Scorer.topk`)."""
        with self._lock:
            q = check_queries(queries, self.dim, k)
            cand = check_candidates(rows, self._n)
            scores = _scores(q, self._matrix[: self._n], cand)
        c = scores.shape[1]
        kk = min(k, c)
        if kk == 0:
            return np.zeros((q.shape[0], 0), dtype=np.int64), np.zeros((q.shape[0], 0), dtype=np.float32)
        if kk < c:
            part = np.argpartition(scores, c - kk, axis=1)[:, c - kk :]
        else:
            part = np.tile(np.arange(c), (q.shape[0], 1))
        top = np.take_along_axis(scores, part, axis=1)
        order = np.argsort(-top, axis=1, kind="stable")
        index = np.take_along_axis(part, order, axis=1).astype(np.int64)
        if cand is not None:
            index = cand[index]
        return index, np.take_along_axis(top, order, axis=1).astype(np.float32)


GATHER_SHARE = 0.25
"""Above this share of the rows, a restricted query scores every row and keeps the candidates'
scores (a gather of floats) instead of copying the candidates' vectors first (1M x 32 rows:
128 MB copied per query)."""


def _scores(queries: npt.NDArray[np.float32], matrix: npt.NDArray[np.float32],
            candidates: npt.NDArray[np.int64] | None) -> npt.NDArray[np.float32]:
    """float32[b, c]: queries float32[b, d] against the candidate rows of matrix float32[n, d]
    (all n when None), column j for candidates[j]."""
    if candidates is None:
        return queries @ matrix.T
    if len(candidates) > GATHER_SHARE * len(matrix):
        return (queries @ matrix.T)[:, candidates]
    return queries @ matrix[candidates].T


def make_scorer(device: str = "auto", *, fp16: bool = False) -> Scorer:
    """Pick a scorer.

    Args:
        device: "auto" (CUDA via torch when torch.cuda is usable, else numpy), "numpy"/"cpu",
            "torch" (torch on CPU), "cuda" or "cuda:N".
        fp16: keep the matrix in float16 (torch backends only; scores returned as float32).
    """
    if device == "auto":
        device = "cuda" if cuda_available() else "numpy"
    if device in ("numpy", "cpu"):
        return NumpyScorer()
    from encoders.scoring_torch import TorchScorer

    if device == "torch":
        return TorchScorer("cpu", fp16=fp16)
    if device.startswith("cuda"):
        if not cuda_available():
            raise ValueError(f"device {device!r} requested but no usable CUDA GPU is present")
        return TorchScorer(device, fp16=fp16)
    raise ValueError(f"device must be 'auto', 'numpy', 'cpu', 'torch' or 'cuda[:N]', got {device!r}")
