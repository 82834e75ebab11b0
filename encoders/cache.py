"""Embedding cache keyed by (encoder fingerprint, sha256 of text), and `CachedEncoder`.

A changed model has a different fingerprint, so none of its texts hit entries written by
the old one: everything is re-encoded. Values are little-endian float32 bytes (no pickle).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from encoders.base import Encoder


def cache_key(fingerprint: str, text: str) -> bytes:
    """utf-8 fingerprint + NUL + sha256(utf-8 text) digest (32 bytes)."""
    if "\x00" in fingerprint:
        raise ValueError("fingerprint must not contain NUL")
    return fingerprint.encode() + b"\x00" + hashlib.sha256(text.encode()).digest()


class EmbeddingStore(Protocol):
    """Bytes key -> float32 bytes value; `get_many` returns None for misses."""

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]: ...

    def put_many(self, items: Sequence[tuple[bytes, bytes]]) -> None: ...


class MemoryEmbeddingCache:
    """In-process dict store (tests, short runs)."""

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        """Values for keys, None where absent."""
        return [self._data.get(key) for key in keys]

    def put_many(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        """Insert or overwrite."""
        self._data.update(items)

    def __len__(self) -> int:
        return len(self._data)

    def close(self) -> None:
        """Nothing to release."""


class EmbeddingCache:
    """RocksDB store (rocksdict, raw bytes mode) under `path`.

    Args:
        path: database directory (created).
    """

    def __init__(self, path: str | Path) -> None:
        from rocksdict import Options, Rdict

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(path)
        self._db: Any = Rdict(str(path), options=Options(raw_mode=True))

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        """Values for keys (one multi-get), None where absent."""
        if not keys:
            return []
        return list(self._db.get(list(keys)))

    def put_many(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        """Insert or overwrite atomically (one write batch)."""
        from rocksdict import WriteBatch

        batch = WriteBatch(raw_mode=True)
        for key, value in items:
            batch.put(key, value)
        self._db.write(batch)

    def __len__(self) -> int:
        return sum(1 for _ in self._db.keys())

    def close(self) -> None:
        """Flush and close the database."""
        self._db.close()


class CachedEncoder:
    """An `Encoder` that only runs `encoder` on texts it has not embedded before.

    Args:
        encoder: the wrapped encoder (its fingerprint namespaces the cache).
        cache: an `EmbeddingCache` or `MemoryEmbeddingCache`.

    Attributes:
        hits / misses: counts of looked-up unique texts found / encoded, since creation.
    """

    def __init__(self, encoder: Encoder, cache: EmbeddingStore) -> None:
        self.encoder = encoder
        self.cache = cache
        self.name = encoder.name
        self.dim = encoder.dim
        self.fingerprint = encoder.fingerprint
        self.hits = 0
        self.misses = 0

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """float32[len(texts), dim] in input order; unchanged texts come from the cache."""
        unique = list(dict.fromkeys(texts))
        keys = [cache_key(self.fingerprint, text) for text in unique]
        found = self.cache.get_many(keys)
        vectors: dict[str, npt.NDArray[np.float32]] = {}
        missing: list[int] = []
        for i, value in enumerate(found):
            if value is not None and len(value) == 4 * self.dim:
                vectors[unique[i]] = np.frombuffer(value, dtype="<f4").astype(np.float32)
            else:
                missing.append(i)
        if missing:
            fresh = np.asarray(self.encoder.encode([unique[i] for i in missing]), dtype=np.float32)
            if fresh.shape != (len(missing), self.dim):
                raise ValueError(f"encoder returned shape {fresh.shape}, expected {(len(missing), self.dim)}")
            self.cache.put_many([(keys[i], fresh[j].astype("<f4").tobytes()) for j, i in enumerate(missing)])
            vectors.update({unique[i]: fresh[j] for j, i in enumerate(missing)})
        self.hits += len(unique) - len(missing)
        self.misses += len(missing)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            out[row] = vectors[text]
        return out
