"""Candidate retrieval for requests that bring no candidates: the `Retriever` an Engine calls,
and its exact numpy implementation (`encoders.retrieval.ScorerRetriever` runs it on a scoring
backend, torch on CUDA when present)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

Retriever = Callable[[npt.NDArray[np.float32], int, npt.NDArray[np.int64]], npt.NDArray[np.int64]]
"""(query float32[d], n, active rows int64[a]) -> the n best active rows for the query."""


def numpy_retriever(vectors: npt.NDArray[np.float32]) -> Retriever:
    """Exact dot-product retrieval over a catalog matrix float32[n, d] (CPU)."""

    def retrieve(query: npt.NDArray[np.float32], n: int, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        if len(rows) <= n:
            return rows
        scores = vectors[rows] @ query
        best = np.argpartition(-scores, n - 1)[:n]
        return rows[best]

    return retrieve
