"""`SharedTables`: one dict for every partition, the worker core's tables in tests and benchmarks."""

from __future__ import annotations

from collections.abc import MutableMapping


class SharedTables:
    """One mapping for every partition: a dict in tests and in-process benchmarks."""

    def __init__(self, table: MutableMapping[bytes, bytes] | None = None) -> None:
        self.table: MutableMapping[bytes, bytes] = {} if table is None else table

    def for_partition(self, partition: int) -> MutableMapping[bytes, bytes]:
        return self.table
