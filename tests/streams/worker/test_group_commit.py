"""The feedback lane's group commit without a broker: processed lists acked only after one flush
hands their state writes to the producer, and flushes bounded by time and by waiting keys."""

import asyncio
import time

import pytest

from streams.worker.lanes import BatchLane, GroupCommit

from .test_lanes import FakeConsumer, add, chunk


class GroupScenario:
    """A lane with `waiting` records, a flush that records which acks preceded it, a clock."""

    def __init__(self, interval_s: float = 0.5, max_keys: int = 100) -> None:
        self.consumer = FakeConsumer()
        self.lane = BatchLane(["t"])
        self.lane.consumer = self.consumer
        self.now = 0.0
        self.keys = 0
        self.flushed_with_acks: list[list[int]] = []
        self.commit = GroupCommit(self.lane, self.flush, lambda: self.keys, interval_s, max_keys,
                                  clock=lambda: self.now)

    async def flush(self) -> None:
        self.flushed_with_acks.append(list(self.consumer.acked))  # what was acked before this flush
        self.keys = 0
        await asyncio.sleep(0.01)  # handing records to the producer waits on the broker

    async def processed(self, offsets: range, waiting: int) -> bool:
        if waiting:
            add(self.lane, self.consumer, *range(1000, 1000 + waiting))
        try:
            return await self.commit.processed([chunk(*offsets)])
        finally:
            self.lane._drop_waiting()


def test_group_commit_acks_only_after_a_flush_and_flushes_when_nothing_waits() -> None:
    async def scenario() -> GroupScenario:
        run = GroupScenario()
        assert not await run.processed(range(0, 3), waiting=5)  # more is waiting: no flush, no ack yet
        assert run.consumer.acked == [] and run.flushed_with_acks == []
        assert await run.processed(range(3, 5), waiting=0)  # the lane ran dry: flush, then ack both lists
        assert run.consumer.acked == [0, 1, 2, 3, 4]
        return run

    before = time.time()
    run = asyncio.run(scenario())
    assert run.flushed_with_acks == [[]] and run.commit.unacked == [] and run.commit.flushes == 1
    assert run.commit.committed == 5 and run.commit.last_commit_at is not None
    assert before <= run.commit.last_commit_at <= time.time()


def test_group_commit_flushes_after_the_interval_or_at_the_key_bound_under_a_backlog() -> None:
    async def scenario() -> GroupScenario:
        run = GroupScenario(interval_s=0.5, max_keys=100)
        run.now = 0.4
        assert not await run.processed(range(0, 2), waiting=10)
        run.now = 0.5  # the interval since the start (the last flush) is over
        assert await run.processed(range(2, 4), waiting=10) and run.consumer.acked == [0, 1, 2, 3]
        run.now, run.keys = 0.6, 99
        assert not await run.processed(range(4, 6), waiting=10)
        run.keys = 100
        assert await run.processed(range(6, 8), waiting=10) and run.consumer.acked == list(range(8))
        return run

    assert asyncio.run(scenario()).flushed_with_acks == [[], [0, 1, 2, 3]]


def test_a_failed_flush_raises_and_acks_nothing() -> None:
    async def scenario() -> FakeConsumer:
        consumer = FakeConsumer()
        lane = BatchLane(["t"])
        lane.consumer = consumer

        async def failing() -> None:
            raise RuntimeError("record too large")

        commit = GroupCommit(lane, failing, lambda: 0, interval_s=0.0, max_keys=10)
        with pytest.raises(RuntimeError, match="too large"):
            await commit.processed([chunk(0)])
        assert commit.committed == 0 and commit.last_commit_at is None
        return consumer

    assert asyncio.run(scenario()).acked == []


def test_group_commit_refuses_bounds_that_never_flush() -> None:
    with pytest.raises(ValueError):
        GroupCommit(BatchLane(["t"]), GroupScenario().flush, lambda: 0, interval_s=-1, max_keys=10)
    with pytest.raises(ValueError):
        GroupCommit(BatchLane(["t"]), GroupScenario().flush, lambda: 0, interval_s=1, max_keys=0)


def test_a_commit_flushes_and_acks_every_processed_list_at_once() -> None:
    async def scenario() -> GroupScenario:
        run = GroupScenario()
        assert not await run.processed(range(0, 3), waiting=5)
        await run.commit.commit()
        return run

    run = asyncio.run(scenario())
    assert run.consumer.acked == [0, 1, 2] and run.flushed_with_acks == [[]] and run.commit.unacked == []
    assert run.commit.committed == 3


def test_a_commit_that_acks_nothing_leaves_the_window_alone() -> None:
    async def scenario() -> GroupScenario:
        run = GroupScenario()
        await run.commit.commit()  # e.g. at an assignment, before any record
        assert run.commit.last_commit_at is None
        run.consumer.owned = {("t", 1)}
        assert await run.processed(range(0, 2), waiting=0)  # partition 0 was revoked: nothing acked
        return run

    run = asyncio.run(scenario())
    assert run.commit.committed == 0 and run.commit.last_commit_at is None and run.consumer.acked == []
