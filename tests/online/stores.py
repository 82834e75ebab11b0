"""Test stores shared by the tests of what a policy writes."""

from __future__ import annotations

from collections.abc import Iterable

from online.state import InMemoryStore


class CountingStore(InMemoryStore):
    """An in-memory store that records the keys of every put_many."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []

    def put_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        items = list(items)
        self.batches.append([key for key, _ in items])
        super().put_many(items)
