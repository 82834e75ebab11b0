"""Forget control records and crash recovery of the worker core, without Kafka."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping

import numpy as np
import pytest

from online.events import EventDecodeError
from streams.control import ForgetUser, decode_control, encode_control
from streams.worker.core import Record
from streams.worker.table_store import unwrap

from .test_core import core, feedback, items, rank_all


class Changelogged(MutableMapping[bytes, bytes]):
    """A dict table that also records every write, like a Faust table's changelog."""

    def __init__(self, data: dict[bytes, bytes] | None = None) -> None:
        self.data = dict(data or {})
        self.log: list[tuple[bytes, bytes | None]] = []

    def __getitem__(self, key: bytes) -> bytes:
        return self.data[key]

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.data[key] = value
        self.log.append((key, value))

    def __delitem__(self, key: bytes) -> None:
        del self.data[key]
        self.log.append((key, None))

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


def forget(offset: int, user: str = "u1") -> Record:
    return Record("control", "t.control", 0, offset, user.encode(), encode_control(ForgetUser(user_id=user)))


def test_control_record_round_trip_and_bad_records() -> None:
    record = ForgetUser(user_id="u9")
    assert decode_control(encode_control(record)) == record
    with pytest.raises(EventDecodeError) as error:
        decode_control(b'{"type": "forget_user", "schema_version": 2, "user_id": "u"}')
    assert error.value.field == "control.schema_version"
    with pytest.raises(EventDecodeError):
        decode_control(b"{nope")


def test_forget_deletes_the_user_and_a_replay_does_not_bring_it_back() -> None:
    table = Changelogged()
    worker = core(table)  # type: ignore[arg-type]
    worker.add_items(items())
    rank_all(worker, 6)
    impressions, clicks = feedback(6)
    dead = worker.learn([*impressions[:4], *clicks[:4], forget(0), Record("control", "t.control", 0, 1, b"u1", b"{")])
    assert [d.error_type for d in dead] == ["EventDecodeError"]
    assert b"linear_ts/user/u1" not in table and (b"linear_ts/user/u1", None) in table.log[-2:]
    assert worker.counts.forgotten == 1 and worker.counts.balanced()
    # u1 was the partition's only user: its contribution left the population too
    emptied = worker.engine(0).policy.decode_global(unwrap(table[b"linear_ts/global/0"])[1])
    assert emptied.n_exposures == 0 and emptied.reward_total == 0
    np.testing.assert_allclose(emptied.gram_upper, 0.0, atol=1e-9)

    # a crash before the commit: everything is delivered again, then newer events
    restarted = core(table)  # type: ignore[arg-type]
    restarted.add_items(items())
    restarted.learn([*impressions[:4], *clicks[:4], forget(0)])
    assert b"linear_ts/user/u1" not in table  # the replayed events did not resurrect the user
    restarted.learn([*impressions[4:], *clicks[4:]])
    state = restarted.engine(0).policy.decode_user(unwrap(table[b"linear_ts/user/u1"])[1])
    assert state.n_exposures == 2 * 3 and state.reward_total == 2  # only what came after the forget
    population = restarted.engine(0).policy.decode_global(unwrap(table[b"linear_ts/global/0"])[1])
    assert population.n_exposures == 2 * 3 and population.reward_total == 2  # the forgotten part stays out
    assert restarted.counts.skipped_duplicates == 8 and restarted.counts.balanced()


def test_replay_resends_what_the_local_store_holds_but_the_changelog_lost() -> None:
    """SIGKILL after a local write, before its changelog record was sent: the replay must
    bring the changelog (what another worker or a fresh store recovers) up to the local state."""
    local = Changelogged()
    worker = core(local)  # type: ignore[arg-type]
    worker.add_items(items())
    rank_all(worker, 8)
    impressions, clicks = feedback(8)
    worker.learn([*impressions[:4], *clicks[:4]])
    sent = len(local.log)
    worker.learn([*impressions[4:], *clicks[4:]])  # local store written; changelog records lost
    changelog = dict((k, v) for k, v in local.log[:sent])

    restarted = core(local)  # type: ignore[arg-type]
    restarted.add_items(items())
    local.log = []
    restarted.learn([*impressions[4:], *clicks[4:]])  # offsets were not committed: delivered again
    assert restarted.counts.skipped_duplicates == 8
    changelog.update(local.log)
    assert changelog[b"linear_ts/user/u1"] == local[b"linear_ts/user/u1"]
    assert changelog[b"linear_ts/global/0"] == local[b"linear_ts/global/0"]
