"""Key-value state storage: the `StateStore` protocol and its in-memory implementation.

The learning core reads and writes opaque bytes through this protocol; the RocksDB
implementation lives at the edge (slatestream/store.py) so the core stays pure.
Keys are strings; values are blobs from online.codec.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class StateStore(Protocol):
    """Byte values under string keys. Implementations need not be thread-safe."""

    def get(self, key: str) -> bytes | None:
        """The value under key, or None."""
        ...

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Values under keys, in order (None where absent)."""
        ...

    def put(self, key: str, value: bytes) -> None:
        """Store value under key, replacing any previous one."""
        ...

    def put_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Store several values in one batch (atomic where the backend allows)."""
        ...

    def delete(self, key: str) -> None:
        """Remove key; absent keys are fine."""
        ...

    def scan_prefix(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        """(key, value) pairs whose key starts with prefix, in key order."""
        ...

    def close(self) -> None:
        """Release resources; the store is unusable afterwards."""
        ...


class InMemoryStore:
    """A dict-backed StateStore for tests, simulations and ephemeral runs."""

    atomic_put_many = True
    """put_many lands whole (a store that can say so may be given a policy's global state in
    parts, online.engine; one that cannot, say nothing)."""

    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self._data.get(key)

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return [self._data.get(key) for key in keys]

    def put(self, key: str, value: bytes) -> None:
        self._data[key] = bytes(value)

    def put_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        for key, value in items:
            self._data[key] = bytes(value)

    def delete(self, key: str) -> None:
        self._data.pop(key, None)

    def scan_prefix(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        for key in sorted(k for k in self._data if k.startswith(prefix)):
            yield key, self._data[key]

    def close(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)
