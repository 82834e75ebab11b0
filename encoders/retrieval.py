"""Candidate retrieval for the engine on a scoring backend (numpy on CPU, torch on CUDA).

`ScorerRetriever(scorer, catalog)` satisfies `online.retrieval.Retriever`: before each query it
mirrors the catalog rows added or changed since the last call into the scorer (so items
added while a worker runs are visible to the next request), then asks the scorer for the
top-n rows among the active ones by inner product with the user's vector.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from encoders.scoring import Scorer
from online.catalog import Catalog


class ScorerRetriever:
    """Retriever over a Scorer mirroring a Catalog's vectors float32[n, d]."""

    def __init__(self, scorer: Scorer, catalog: Catalog) -> None:
        self.scorer = scorer
        self.catalog = catalog

    def sync(self) -> None:
        """Copy changed catalog rows into the scorer (growing it in row order)."""
        rows = self.catalog.take_changes()
        if len(rows):
            self.scorer.update_rows(rows, self.catalog.vectors[rows])

    def __call__(
        self, query: npt.NDArray[np.float32], n: int, rows: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.int64]:
        """The n active rows (among `rows`) with the largest query . vector."""
        self.sync()
        if len(rows) <= n:
            return rows
        every_row = len(rows) == len(self.catalog)  # rows are distinct catalog rows: all of them
        best, _ = self.scorer.topk(np.asarray(query, dtype=np.float32)[None, :], n, None if every_row else rows)
        chosen: npt.NDArray[np.int64] = best[0]
        return chosen
