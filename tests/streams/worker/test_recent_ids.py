"""RecentIds' stored lists: 16 bytes an id in the binary form, read back to the same digests and
times, and lists an earlier version stored as JSON still read."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from online.codec import StateCodecError
from online.state import InMemoryStore
from streams.worker.recent_ids import MAGIC, RecentIds, decode_ids, encode_ids, id_key


def test_written_lists_read_back_equal_at_16_bytes_an_id_whatever_its_length() -> None:
    """Seeded ids (unicode, quotes, backslashes, up to the 256 characters an id may have) and
    times (fractions, large, tiny): the stored value is MAGIC + 16 bytes an id, and a fresh
    reader (no memory) gets the same {digest: time}, in order, capacity kept."""
    rng = np.random.default_rng(3)
    store = InMemoryStore()
    writer = RecentIds(lambda _: store, "events", capacity=16)
    ids = [(f"e{i}-\u00e9\"\\{int(rng.integers(1 << 40))}" * int(rng.integers(1, 12)),
            float(rng.choice([1.0, 1e-7, 1e12])) * rng.random()) for i in range(40)]
    assert max(len(i) for i, _ in ids) > 200
    for start in range(0, 40, 7):
        writer.add(0, "u1", ids[start : start + 7])
    raw = store.get("events/u1")
    assert raw is not None and raw.startswith(MAGIC) and len(raw) == len(MAGIC) + 16 * 16
    kept = [(id_key(i), t) for i, t in ids[-16:]]
    reader = RecentIds(lambda _: store, "events", capacity=16)
    assert list(reader.of(0, "u1").items()) == kept
    assert reader.time_of(0, "u1", ids[-1][0]) == ids[-1][1]
    assert reader.time_of(0, "u1", ids[0][0]) is None  # dropped past capacity


def test_distinct_ids_get_distinct_digests_and_the_same_id_the_same_one() -> None:
    """Digests are stable (not Python's per-process hash): a fixed id's value is pinned, and
    100,000 distinct ids give 100,000 digests of 8 bytes."""
    assert id_key("e1") == bytes.fromhex("1b5d5e51f54f0f04")
    digests = {id_key(f"r{n}") for n in range(100_000)}
    assert len(digests) == 100_000 and {len(digest) for digest in digests} == {8}


def test_a_stored_list_holds_each_digest_as_a_little_endian_u64_as_before() -> None:
    """The stored form is the one earlier builds wrote (digests as little-endian u64, then
    f64 times): a list written as they wrote it reads back, and is written back the same."""
    digests = [id_key("a"), id_key("b")]
    earlier = MAGIC + struct.pack("<2Q2d", *(int.from_bytes(d, "little") for d in digests), 1.5, 2.5)
    assert decode_ids(earlier) == {digests[0]: 1.5, digests[1]: 2.5}
    assert encode_ids(decode_ids(earlier)) == earlier


def test_lists_an_earlier_version_wrote_as_json_still_read_and_are_rewritten_binary() -> None:
    store = InMemoryStore()
    store.put("events/u2", json.dumps([["a", 1.5], ["b", 1767225600.123456]]).encode())
    ids = RecentIds(lambda _: store, "events", capacity=4)
    assert ids.of(0, "u2") == {id_key("a"): 1.5, id_key("b"): 1767225600.123456}
    ids.add(0, "u2", [("c", 2.5)])
    assert decode_ids(store.get("events/u2") or b"") == {id_key("a"): 1.5, id_key("b"): 1767225600.123456,
                                                          id_key("c"): 2.5}


@pytest.mark.parametrize("value", [b"RIDS\x01" + b"\x00" * 15, b"RIDX\x01" + b"\x00" * 16, b"RID", b""])
def test_a_value_that_is_neither_form_is_refused(value: bytes) -> None:
    with pytest.raises(StateCodecError, match="not a stored list of recent ids"):
        decode_ids(value)


def test_a_later_version_of_the_binary_form_is_refused_as_newer() -> None:
    with pytest.raises(StateCodecError, match="recent ids of version 2: this build reads version 1"):
        decode_ids(b"RIDS\x02" + b"\x00" * 16)


def test_extending_a_held_list_moves_repeated_ids_to_the_newest_end_and_keeps_capacity() -> None:
    """`extend` with the list `of` returned: an id already there moves to the newest end with
    its new time, the oldest are dropped past capacity, and a fresh reader reads the same."""
    store = InMemoryStore()
    ids = RecentIds(lambda _: store, "events", capacity=4)
    ids.add(0, "u1", [("a", 1.0), ("b", 2.0), ("c", 3.0)])
    held = ids.of(0, "u1")
    ids.extend(0, "u1", held, {id_key("a"): 4.0, id_key("d"): 5.0, id_key("e"): 6.0})
    assert list(held.items()) == [(id_key("c"), 3.0), (id_key("a"), 4.0), (id_key("d"), 5.0), (id_key("e"), 6.0)]
    assert list(RecentIds(lambda _: store, "events", capacity=4).of(0, "u1").items()) == list(held.items())
