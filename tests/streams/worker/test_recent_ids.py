"""RecentIds' stored lists: JSON that reads back to the same ids and times, old values included."""

from __future__ import annotations

import json

import numpy as np

from online.state import InMemoryStore
from streams.worker.recent_ids import RecentIds


def test_written_lists_read_back_equal_and_as_json_dumps_would_read() -> None:
    """Seeded ids (unicode, quotes, backslashes) and times (fractions, large, tiny): the stored
    value is JSON whose values equal json.dumps' of the same list, and a fresh reader (no
    memory) gets the same {id: time}, in order, capacity kept."""
    rng = np.random.default_rng(3)
    store = InMemoryStore()
    writer = RecentIds(lambda _: store, "events", capacity=16)
    ids = [(f"e{i}-\u00e9\"\\{int(rng.integers(1 << 40))}", float(rng.choice([1.0, 1e-7, 1e12])) * rng.random())
           for i in range(40)]
    for start in range(0, 40, 7):
        writer.add(0, "u1", ids[start : start + 7])
    raw = store.get("events/u1")
    assert raw is not None
    kept = ids[-16:]
    assert json.loads(raw) == json.loads(json.dumps([list(pair) for pair in kept]))
    reader = RecentIds(lambda _: store, "events", capacity=16)
    assert list(reader.of(0, "u1").items()) == kept


def test_lists_written_by_json_dumps_still_read() -> None:
    store = InMemoryStore()
    store.put("events/u2", json.dumps([["a", 1.5], ["b", 1767225600.123456]]).encode())
    assert RecentIds(lambda _: store, "events", capacity=4).of(0, "u2") == {"a": 1.5, "b": 1767225600.123456}


def test_extending_a_held_list_moves_repeated_ids_to_the_newest_end_and_keeps_capacity() -> None:
    """`extend` with the list `of` returned: an id already there moves to the newest end with
    its new time, the oldest are dropped past capacity, and a fresh reader reads the same."""
    store = InMemoryStore()
    ids = RecentIds(lambda _: store, "events", capacity=4)
    ids.add(0, "u1", [("a", 1.0), ("b", 2.0), ("c", 3.0)])
    held = ids.of(0, "u1")
    ids.extend(0, "u1", held, {"a": 4.0, "d": 5.0, "e": 6.0})
    assert list(held.items()) == [("c", 3.0), ("a", 4.0), ("d", 5.0), ("e", 6.0)]
    assert list(RecentIds(lambda _: store, "events", capacity=4).of(0, "u1").items()) == list(held.items())
