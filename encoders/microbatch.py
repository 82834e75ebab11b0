"""`MicroBatcher`: coalesce concurrent single-query top-k requests into batched calls.

Requests arriving within `max_wait_ms` of the first pending one (or until `max_batch` are
pending) are answered by one `scorer.topk` call per distinct candidate set, with k the
largest asked; each caller gets the prefix it asked for (results are sorted by score).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from encoders.scoring_base import Scorer

Result = tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]


@dataclass(frozen=True)
class _Request:
    query: npt.NDArray[np.float32]
    k: int
    rows: npt.NDArray[np.int64] | None
    future: asyncio.Future[Result]

    def group(self) -> bytes | None:
        if self.rows is None:
            return None
        return hashlib.blake2b(self.rows.tobytes(), digest_size=16).digest() + self.rows.size.to_bytes(8, "little")


class MicroBatcher:
    """Async front of a `Scorer` (use from one event loop).

    Args:
        scorer: the backend answering batched `topk`.
        max_wait_ms: how long the first pending request waits for company.
        max_batch: flush at once when this many requests are pending.
        offload: run the scorer call in the loop's default thread pool, so a slow CPU scan
            does not block the loop (the scorers are thread-safe).

    Attributes:
        calls / requests: scorer calls made and requests answered (calls <= requests).
    """

    def __init__(self, scorer: Scorer, max_wait_ms: float = 2.0, max_batch: int = 64, offload: bool = False) -> None:
        if max_wait_ms < 0 or max_batch < 1:
            raise ValueError(f"max_wait_ms must be >= 0 and max_batch >= 1, got {max_wait_ms}, {max_batch}")
        self.scorer = scorer
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_batch = max_batch
        self.offload = offload
        self.calls = 0
        self.requests = 0
        self._pending: list[_Request] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def topk(self, query: npt.ArrayLike, k: int, rows: npt.ArrayLike | None = None) -> Result:
        """Top-k for one query float32[d]: (int64[k'], float32[k']), as `Scorer.topk` row 0."""
        q = np.asarray(query, dtype=np.float32)
        if q.ndim != 1:
            raise ValueError(f"query must be 1-D [d], got shape {q.shape}")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        loop = asyncio.get_running_loop()
        request = _Request(q, k, None if rows is None else np.asarray(rows, dtype=np.int64), loop.create_future())
        self._pending.append(request)
        if len(self._pending) >= self.max_batch:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.max_wait_s, self._flush)
        return await request.future

    async def drain(self) -> None:
        """Flush what is pending and wait for every batch in flight."""
        self._flush()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if not batch:
            return
        groups: dict[bytes | None, list[_Request]] = {}
        for request in batch:
            groups.setdefault(request.group(), []).append(request)
        task = asyncio.get_running_loop().create_task(self._answer(list(groups.values())))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, groups: list[list[_Request]]) -> None:
        for group in groups:
            live = [r for r in group if not r.future.done()]
            if not live:
                continue
            call = self._caller(live)
            try:
                if self.offload:
                    index, scores = await asyncio.get_running_loop().run_in_executor(None, call)
                else:
                    index, scores = call()
            except Exception as error:
                for request in live:
                    if not request.future.done():
                        request.future.set_exception(error)
                continue
            self.calls += 1
            self.requests += len(live)
            for i, request in enumerate(live):
                if not request.future.done():
                    request.future.set_result((index[i, : request.k].copy(), scores[i, : request.k].copy()))

    def _caller(self, group: list[_Request]) -> Callable[[], Result]:
        queries = np.stack([r.query for r in group])
        k = max(r.k for r in group)
        rows = group[0].rows
        return lambda: self.scorer.topk(queries, k, rows)
