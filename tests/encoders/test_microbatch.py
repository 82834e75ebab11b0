import asyncio

import numpy as np
import pytest

from encoders.microbatch import MicroBatcher
from encoders.scoring import NumpyScorer


class CountingScorer(NumpyScorer):
    def __init__(self) -> None:
        super().__init__()
        self.batch_sizes: list[int] = []

    def topk(self, queries, k, rows=None):
        self.batch_sizes.append(len(queries))
        return super().topk(queries, k, rows)


def setup(n: int = 200, d: int = 8) -> tuple[CountingScorer, np.ndarray]:
    rng = np.random.default_rng(0)
    scorer = CountingScorer()
    scorer.set_matrix(rng.normal(size=(n, d)).astype(np.float32))
    return scorer, rng.normal(size=(20, d)).astype(np.float32)


@pytest.mark.parametrize("offload", [False, True])
def test_concurrent_requests_answered_by_one_call(offload) -> None:
    scorer, queries = setup()
    batcher = MicroBatcher(scorer, max_wait_ms=20, max_batch=64, offload=offload)

    async def main():
        return await asyncio.gather(*(batcher.topk(q, 3 + i % 4) for i, q in enumerate(queries)))

    results = asyncio.run(main())
    assert scorer.batch_sizes == [20] and batcher.calls == 1 and batcher.requests == 20
    for i, (index, scores) in enumerate(results):
        want_index, want_scores = NumpyScorer.topk(scorer, queries[i : i + 1], 3 + i % 4)
        np.testing.assert_array_equal(index, want_index[0])
        np.testing.assert_allclose(scores, want_scores[0], rtol=1e-5)


def test_max_batch_and_candidate_groups() -> None:
    scorer, queries = setup()
    batcher = MicroBatcher(scorer, max_wait_ms=50, max_batch=8)
    rows_a, rows_b = np.arange(0, 50), np.arange(100, 120)

    async def main():
        first = await asyncio.gather(*(batcher.topk(q, 2) for q in queries[:16]))
        mixed = await asyncio.gather(
            *(batcher.topk(q, 2, rows=rows_a if i % 2 else rows_b) for i, q in enumerate(queries[:6]))
        )
        return first, mixed

    first, mixed = asyncio.run(main())
    assert scorer.batch_sizes[:2] == [8, 8]  # flushed by size, not by the 50 ms timer
    assert sorted(scorer.batch_sizes[2:]) == [3, 3]  # one call per candidate set
    for i, (index, _) in enumerate(mixed):
        assert set(index.tolist()) <= set((rows_a if i % 2 else rows_b).tolist())
    assert all(len(index) == 2 for index, _ in first)


def test_errors_reach_every_caller() -> None:
    scorer, queries = setup()
    batcher = MicroBatcher(scorer, max_wait_ms=5)

    async def main():
        return await asyncio.gather(
            *(batcher.topk(q, 2, rows=np.array([999])) for q in queries[:3]), return_exceptions=True
        )

    results = asyncio.run(main())
    assert all(isinstance(r, ValueError) for r in results)
    with pytest.raises(ValueError, match="max_batch"):
        MicroBatcher(scorer, max_batch=0)
