"""Helpers shared by the worker integration tests (polling, partitioning, slate means)."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from online.events import RankRequest
from streams.client import SlatestreamClient


def poll(condition: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.5) -> None:
    """Wait until condition() holds; AssertionError naming `what` after timeout_s seconds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s:g} s waiting for {what}"
        time.sleep(interval_s)


def slate_means(client: SlatestreamClient, request_id: str, user_id: str, candidates: tuple[str, ...],
                timeout_s: float = 30.0) -> np.ndarray:
    """The posterior mean of every candidate, in candidate order, from one slate of them all."""
    slate = client.request_slate(RankRequest(request_id=request_id, user_id=user_id, candidates=candidates,
                                             k=len(candidates)), timeout_s=timeout_s)
    by_item = {item.item_id: item.mean for item in slate.items}
    return np.array([by_item[item] for item in candidates])
