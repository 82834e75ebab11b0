"""`TorchScorer`: the catalogue matrix resident on a torch device (CUDA, or CPU for tests).

Imports torch at module level: reach it through `encoders.scoring.make_scorer`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch

from encoders.scoring_base import CatalogShape, TopK, check_candidates, check_queries, check_update, grown_capacity

MAX_SCORE_ELEMENTS = 1 << 28  # queries are chunked so one score block stays below this


class TorchScorer(CatalogShape):
    """Batched matmul + torch.topk on `device`.

    Args:
        device: "cpu", "cuda" or "cuda:N".
        fp16: store the matrix (and run the matmul) in float16; scores come back float32.
    """

    backend = "torch"

    def __init__(self, device: str = "cpu", fp16: bool = False) -> None:
        super().__init__()
        self._device = torch.device(device)
        if self._device.type == "cuda" and self._device.index is None:
            self._device = torch.device("cuda", torch.cuda.current_device())
        self.device = str(self._device)
        self.dtype = torch.float16 if fp16 else torch.float32
        self._matrix = torch.zeros((0, 0), dtype=self.dtype, device=self._device)

    def _tensor(self, array: npt.NDArray[np.generic]) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(self._device, non_blocking=False)

    def set_matrix(self, matrix: npt.ArrayLike) -> None:
        """Replace the catalogue with float32[n, d] (copied to the device)."""
        m = np.asarray(matrix, dtype=np.float32)
        if m.ndim != 2 or m.shape[1] < 1:
            raise ValueError(f"matrix must be [n, d >= 1], got shape {m.shape}")
        tensor = torch.tensor(m, dtype=self.dtype, device=self._device)  # always a copy
        with self._lock:
            self._matrix, self._n, self._dim = tensor, m.shape[0], m.shape[1]

    def update_rows(self, rows: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        """Overwrite/append rows (see `Scorer.update_rows`)."""
        with self._lock:
            r, v, new_n = check_update(rows, vectors, self._n, self._dim)
            if self._dim is None:
                self._dim = v.shape[1]
                self._matrix = torch.zeros((0, self._dim), dtype=self.dtype, device=self._device)
            if new_n > self._matrix.shape[0]:
                capacity = grown_capacity(self._matrix.shape[0], new_n)
                grown = torch.zeros((capacity, self._dim), dtype=self.dtype, device=self._device)
                grown[: self._n] = self._matrix[: self._n]
                self._matrix = grown
            if r.size:
                self._matrix.index_copy_(0, self._tensor(r), self._tensor(v).to(self.dtype))
            self._n = new_n

    def topk(self, queries: npt.ArrayLike, k: int, rows: npt.ArrayLike | None = None) -> TopK:
        """Top-k catalogue rows per query (see `Scorer.topk`)."""
        with self._lock, torch.inference_mode():
            q = check_queries(queries, self.dim, k)
            cand = check_candidates(rows, self._n)
            if cand is None:
                matrix = self._matrix[: self._n]
            else:
                cand_t = self._tensor(cand)
                matrix = self._matrix.index_select(0, cand_t)
            c = matrix.shape[0]
            kk = min(k, c)
            b = q.shape[0]
            if kk == 0:
                return np.zeros((b, 0), dtype=np.int64), np.zeros((b, 0), dtype=np.float32)
            q_t = self._tensor(q).to(self.dtype)
            chunk = max(1, MAX_SCORE_ELEMENTS // max(c, 1))
            values, index = [], []
            for start in range(0, b, chunk):
                top = torch.topk(q_t[start : start + chunk] @ matrix.T, kk, dim=1, largest=True, sorted=True)
                values.append(top.values)
                index.append(top.indices)
            idx = torch.cat(index)
            if cand is not None:
                idx = cand_t[idx]
            return idx.to("cpu", torch.int64).numpy(), torch.cat(values).to("cpu", torch.float32).numpy()

    def synchronize(self) -> None:
        """Wait for queued device work (for timing)."""
        if self._device.type == "cuda":
            torch.cuda.synchronize(self._device)
