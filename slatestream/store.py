"""The RocksDB StateStore (rocksdict): the embedded default, one directory on disk."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from rocksdict import Options, Rdict, WriteBatch


class RocksDictStore:
    """StateStore over a RocksDB directory. Values are raw bytes (no pickling).

    Args:
        path: directory of the database; created when missing.
    """

    atomic_put_many = True
    """put_many is one RocksDB WriteBatch (with the write-ahead log: whole after a crash too)."""

    def __init__(self, path: str | Path) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        self.path = Path(path)
        self._db = Rdict(str(path), options=options)

    def get(self, key: str) -> bytes | None:
        value = self._db.get(key.encode())
        return None if value is None else bytes(value)

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        values = self._db.get([key.encode() for key in keys])
        if not isinstance(values, list):  # rocksdict answers a list of keys with a list of values
            raise TypeError(f"{self.path}: a multi-key get returned {type(values).__name__}, not a list")
        return [None if value is None else bytes(value) for value in values]

    def put(self, key: str, value: bytes) -> None:
        self._db.put(key.encode(), value)

    def put_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        batch = WriteBatch(raw_mode=True)
        for key, value in items:
            batch.put(key.encode(), value)
        self._db.write(batch)

    def delete(self, key: str) -> None:
        self._db.delete(key.encode())

    def scan_prefix(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        raw_prefix = prefix.encode()
        for key, value in self._db.items(from_key=raw_prefix):
            if not isinstance(key, bytes):  # raw mode: every key comes back as bytes
                raise TypeError(f"{self.path}: a key is {type(key).__name__}, not bytes (raw mode)")
            if not key.startswith(raw_prefix):
                break
            yield key.decode(), bytes(value)

    def close(self) -> None:
        self._db.close()
