"""Length bucketing for transformer batches (pure numpy, no tokenizer or runtime imports).

Texts are sorted by token length and cut into batches, so each batch is padded only to
its own longest member; `pad_batch` builds the int64 arrays a BERT-family model takes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]


def length_buckets(lengths: Sequence[int], batch_size: int) -> list[IntArray]:
    """Split positions 0..n-1 into batches of similar length.

    Args:
        lengths: token count of each text, int[n].
        batch_size: maximum batch size (>= 1).

    Returns:
        A list of int64 index arrays (positions into `lengths`), longest texts first; each
        holds at most `batch_size` positions and together they cover every position once.
        Ties keep input order (stable sort), so the split is deterministic.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def pad_batch(
    token_ids: Sequence[Sequence[int]], positions: IntArray, pad_id: int
) -> tuple[IntArray, IntArray]:
    """Pad the selected token-id lists to the longest among them.

    Args:
        token_ids: token ids of every text (ragged).
        positions: int64[b] which texts form this batch.
        pad_id: the tokenizer's padding id.

    Returns:
        (input_ids int64[b, L], attention_mask int64[b, L]) with L the longest selected length;
        padding sits on the right and has mask 0.
    """
    rows = [token_ids[int(p)] for p in positions]
    width = max((len(r) for r in rows), default=0)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return ids, mask


def l2_normalise(matrix: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    """Rows scaled to unit L2 norm as float32[n, D]; all-zero rows stay zero."""
    out = np.asarray(matrix, dtype=np.float32).copy()
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0)
    return out
