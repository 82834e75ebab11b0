from collections.abc import Callable, Sequence

import numpy as np
import pytest

from encoders.base import Encoder
from encoders.cache import CachedEncoder, EmbeddingCache, MemoryEmbeddingCache, cache_key
from encoders.hashing import HashingEncoder


class CountingEncoder:
    """HashingEncoder that records every text it is asked to encode."""

    def __init__(self, seed: int = 0) -> None:
        self.inner = HashingEncoder(dim=16, seed=seed)
        self.name, self.dim, self.fingerprint = "counting", 16, f"counting-{seed}"
        self.seen: list[str] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.seen.extend(texts)
        return self.inner.encode(texts)


@pytest.fixture(params=["memory", "rocksdb"])
def make_store(request, tmp_path) -> Callable[[], object]:
    opened: list[object] = []

    def make() -> object:
        store = MemoryEmbeddingCache() if request.param == "memory" else EmbeddingCache(tmp_path / "cache")
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def test_satisfies_protocol_and_matches_direct(make_store) -> None:
    fake = CountingEncoder()
    cached = CachedEncoder(fake, make_store())
    assert isinstance(cached, Encoder)
    texts = ["red shoes", "blue hat", "red shoes", ""]
    np.testing.assert_array_equal(cached.encode(texts), fake.inner.encode(texts))
    assert fake.seen == ["red shoes", "blue hat", ""]  # duplicates encoded once


def test_unchanged_text_never_reencoded(make_store) -> None:
    fake = CountingEncoder()
    cached = CachedEncoder(fake, make_store())
    cached.encode(["a", "b", "c"])
    fake.seen.clear()
    out = cached.encode(["c", "b", "a", "d"])
    assert fake.seen == ["d"]
    np.testing.assert_array_equal(out, fake.inner.encode(["c", "b", "a", "d"]))
    assert cached.hits == 3 and cached.misses == 4


def test_model_change_reencodes_everything(make_store) -> None:
    store = make_store()
    CachedEncoder(CountingEncoder(seed=0), store).encode(["a", "b"])
    changed = CountingEncoder(seed=1)
    out = CachedEncoder(changed, store).encode(["a", "b"])
    assert changed.seen == ["a", "b"]
    np.testing.assert_array_equal(out, changed.inner.encode(["a", "b"]))


def test_rocksdb_persists_across_reopen(tmp_path) -> None:
    first = EmbeddingCache(tmp_path / "db")
    CachedEncoder(CountingEncoder(), first).encode(["x", "y"])
    first.close()
    second = EmbeddingCache(tmp_path / "db")
    fake = CountingEncoder()
    out = CachedEncoder(fake, second).encode(["y", "x"])
    second.close()
    assert fake.seen == []
    np.testing.assert_array_equal(out, fake.inner.encode(["y", "x"]))


def test_key_separates_fingerprints_and_texts() -> None:
    assert cache_key("m1", "a") != cache_key("m2", "a") != cache_key("m1", "b")
    with pytest.raises(ValueError, match="fingerprint"):
        cache_key("bad\x00", "a")
