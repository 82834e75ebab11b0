"""The batch lane without a broker: lists, acks, back-pressure and settling on a rebalance (its
group commit: test_group_commit.py)."""

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest

from streams.worker.lanes import BatchLane, Chunk, fetch_wait_s, records


class FakeConsumer:
    """Records what the lane asks of Faust's consumer."""

    def __init__(self) -> None:
        self.acked: list[int] = []
        self.paused: list[Any] = []
        self.resumed: list[Any] = []
        self._buffered_partitions: set[Any] = set()
        self.owned: set[Any] = {("t", 0), ("t", 1)}

    def assignment(self) -> set[Any]:
        return self.owned

    def ack_offsets(self, tp: Any, offsets: list[int]) -> None:
        self.acked.extend(offsets)

    def on_buffer_full(self, tp: Any) -> None:
        self.paused.append(tp)
        self._buffered_partitions.add(tp)

    def on_buffer_drop(self, tp: Any) -> None:
        self.resumed.append(tp)
        self._buffered_partitions.discard(tp)

    def forget_paused(self, tp: Any) -> None:
        self._buffered_partitions.discard(tp)


def message(offset: int, partition: int = 0) -> SimpleNamespace:
    """A record as aiokafka parses it (the fields the lane and the worker read)."""
    return SimpleNamespace(topic="t", partition=partition, offset=offset, key=b"k", value=b"v")


def add(lane: BatchLane, consumer: FakeConsumer, *offsets: int, partition: int = 0) -> None:
    """What the drain loop does with one fetch's records of one partition."""
    lane.add(consumer, ("t", partition), [message(offset, partition) for offset in offsets])


def chunk(*offsets: int, partition: int = 0) -> Chunk:
    return Chunk(("t", partition), [message(offset, partition) for offset in offsets])


def offsets(batch: list[Chunk]) -> list[int]:
    return [m.offset for m in records(batch)]


def test_records_come_in_lists_of_at_most_max_batch_in_order_and_are_acked() -> None:
    async def scenario() -> tuple[list[list[int]], list[int], BatchLane]:
        consumer = FakeConsumer()
        lane = BatchLane(["t"], max_batch=3, high_water=100, low_water=10)
        for offset in range(7):
            add(lane, consumer, offset)
        assert lane.taken == 0 and lane.first_taken_at is None
        seen: list[list[int]] = []
        async for batch in lane.batches():
            seen.append(offsets(batch))
            lane.ack(batch)
            if sum(map(len, seen)) == 7:
                break
        return seen, consumer.acked, lane

    before = time.time()
    seen, acked, lane = asyncio.run(scenario())
    assert seen == [[0, 1, 2], [3, 4, 5], [6]] and acked == list(range(7))
    assert lane.taken == 7 and lane.first_taken_at is not None and before <= lane.first_taken_at <= time.time()


def test_partitions_pause_above_high_water_and_resume_below_low_water() -> None:
    async def scenario() -> FakeConsumer:
        consumer = FakeConsumer()
        lane = BatchLane(["t"], max_batch=4, high_water=6, low_water=3)
        for offset in range(8):
            add(lane, consumer, offset, partition=offset % 2)
        assert consumer.paused == [("t", 0), ("t", 1)]  # records 7 and 8 arrived above 6
        batches = lane.batches()
        await batches.__anext__()  # 4 left: still paused
        assert consumer.resumed == []
        await batches.__anext__()  # 0 left
        assert sorted(consumer.resumed) == [("t", 0), ("t", 1)]
        await batches.aclose()
        return consumer

    asyncio.run(scenario())


def test_the_next_fetch_call_waits_briefly_while_a_lane_holds_partitions_back() -> None:
    """Else a fetch call begun while a partition was paused would not see its records, waiting in
    the consumer, once the lane resumed it: not before a fetch returned or the call's wait ran out."""
    async def scenario() -> list[tuple[bool, float]]:
        consumer, quiet = FakeConsumer(), BatchLane(["u"], max_batch=4, high_water=6, low_water=3)
        lane = BatchLane(["t"], max_batch=4, high_water=6, low_water=3)
        seen = [(lane.holds_back, fetch_wait_s([lane, quiet], idle_s=1.0, held_back_s=0.01))]
        for offset in range(8):
            add(lane, consumer, offset)
        seen.append((lane.holds_back, fetch_wait_s([quiet, lane], idle_s=1.0, held_back_s=0.01)))
        batches = lane.batches()
        await batches.__anext__()
        await batches.__anext__()  # nothing waits: resumed
        seen.append((lane.holds_back, fetch_wait_s([lane, quiet], idle_s=1.0, held_back_s=0.01)))
        await batches.aclose()
        return seen

    assert asyncio.run(scenario()) == [(False, 1.0), (True, 0.01), (False, 1.0)]


def test_settle_drops_what_waits_and_waits_for_the_list_in_hand() -> None:
    async def scenario() -> tuple[int, list[str]]:
        consumer = FakeConsumer()
        lane = BatchLane(["t"], max_batch=2, high_water=3, low_water=1)
        for offset in range(6):
            add(lane, consumer, offset)
        order: list[str] = []
        taken = asyncio.Event()

        async def task() -> None:
            async for batch in lane.batches():
                taken.set()
                await asyncio.sleep(0.05)  # processing
                order.append(f"processed {offsets(batch)}")
                lane.ack(batch)

        runner = asyncio.create_task(task())
        await taken.wait()
        dropped = await lane.settle()
        order.append("settled")
        assert not consumer._buffered_partitions  # un-paused, not re-activated
        runner.cancel()
        return dropped, order

    dropped, order = asyncio.run(scenario())
    assert dropped == 4 and order == ["processed [0, 1]", "settled"]


def test_bad_water_marks_are_refused() -> None:
    with pytest.raises(ValueError, match="low_water < high_water"):
        BatchLane(["t"], high_water=10, low_water=10)


def test_a_fetch_is_handed_over_whole_once_the_consumer_says_it_was_added() -> None:
    async def scenario() -> list[int]:
        consumer = FakeConsumer()
        lane = BatchLane(["t"], max_batch=100, high_water=1_000, low_water=10)
        batches = lane.batches()
        waiting = asyncio.ensure_future(batches.__anext__())
        for offset in range(5):
            add(lane, consumer, offset)
            await asyncio.sleep(0)  # the drain loop yields now and then: nothing handed over yet
        assert not waiting.done()
        lane.fetched()
        batch = await waiting
        await batches.aclose()
        return offsets(batch)

    assert asyncio.run(scenario()) == [0, 1, 2, 3, 4]


def test_records_of_partitions_no_longer_assigned_are_dropped_when_taken() -> None:
    async def scenario() -> tuple[list[int], list[int]]:
        consumer = FakeConsumer()
        lane = BatchLane(["t"], max_batch=10, high_water=100, low_water=10)
        for offset in range(4):
            add(lane, consumer, offset, partition=offset % 2)
        consumer.owned = {("t", 1)}  # partition 0 was revoked meanwhile
        lane.fetched()
        batches = lane.batches()
        batch = await batches.__anext__()
        lane.ack(batch)
        await batches.aclose()
        return offsets(batch), consumer.acked

    assert asyncio.run(scenario()) == ([1, 3], [1, 3])


def test_acks_skip_records_of_partitions_revoked_after_they_were_taken() -> None:
    consumer = FakeConsumer()
    lane = BatchLane(["t"])
    add(lane, consumer, 0)
    consumer.owned = {("t", 1)}
    lane.ack([chunk(0), chunk(1, partition=1)])
    assert consumer.acked == [1]


def test_a_held_lane_finishes_the_list_in_hand_and_takes_none_until_released() -> None:
    async def scenario() -> list[str]:
        consumer = FakeConsumer()
        lane = BatchLane(["t"], max_batch=2, high_water=100, low_water=10)
        for offset in range(4):
            add(lane, consumer, offset)
        lane.fetched()
        log: list[str] = []

        async def task() -> None:
            async for batch in lane.batches():
                log.append(f"took {offsets(batch)}")
                await asyncio.sleep(0.01)  # processing, during which the rebalance arrives
                log.append("processed")
                if log.count("processed") == 2:
                    return

        async def rebalance() -> None:
            await asyncio.sleep(0.005)
            async with lane.held(drop=False) as dropped:
                log.append(f"held, dropped {dropped}")
                await asyncio.sleep(0.02)
                log.append("released")

        await asyncio.gather(task(), rebalance())
        async with lane.held(drop=True) as dropped:
            log.append(f"dropped {dropped}")
        return log

    assert asyncio.run(scenario()) == ["took [0, 1]", "processed", "held, dropped 0", "released",
                                       "took [2, 3]", "processed", "dropped 0"]


def test_acking_nothing_needs_no_consumer_yet() -> None:
    BatchLane(["t"]).ack([])  # a rebalance commit before the lane saw its first record


def lists_of(lane: BatchLane, consumer: FakeConsumer, count: int) -> list[list[tuple[Any, list[int]]]]:
    """The first `count` lists the lane hands over (each acked), as (tp, offsets) per chunk;
    TimeoutError if fewer come within 5 s."""
    async def scenario() -> list[list[tuple[Any, list[int]]]]:
        seen = []
        async for batch in lane.batches():
            seen.append([(c.tp, [m.offset for m in c.records]) for c in batch])
            lane.ack(batch)
            if len(seen) == count:
                break
        return seen

    return asyncio.run(asyncio.wait_for(scenario(), timeout=5.0))


def test_a_fetch_larger_than_max_batch_is_split_into_equal_pieces_and_partitions_keep_their_chunks() -> None:
    consumer = FakeConsumer()
    lane = BatchLane(["t"], max_batch=4, high_water=100, low_water=10)
    add(lane, consumer, *range(6))
    add(lane, consumer, 10, 11, partition=1)
    lane.fetched()
    assert lane.waiting == 8
    seen = lists_of(lane, consumer, 2)
    # 6 records at max_batch 4: pieces of 3 and 3 (not 4 and 2); the first list fills up with its partition's
    assert seen == [[(("t", 0), [0, 1, 2]), (("t", 0), [3])], [(("t", 0), [4, 5]), (("t", 1), [10, 11])]]
    assert consumer.acked == [0, 1, 2, 3, 4, 5, 10, 11] and lane.waiting == 0


def test_a_list_fills_up_with_its_first_chunks_partition_across_topics_then_takes_whole_chunks() -> None:
    consumer = FakeConsumer()
    consumer.owned |= {("u", 0), ("u", 1)}
    lane = BatchLane(["t", "u"], max_batch=10, high_water=100, low_water=5)
    add(lane, consumer, *range(6))  # partition 0's impressions, say
    add(lane, consumer, *range(100, 107), partition=1)
    lane.add(consumer, ("u", 0), [SimpleNamespace(topic="u", partition=0, offset=o, key=b"k", value=b"v")
                                  for o in (50, 51, 52)])  # partition 0's clicks
    add(lane, consumer, 6, 7)
    add(lane, consumer, 107, 108, 109, partition=1)
    add(lane, consumer, 110, partition=1)
    lane.fetched()
    seen = lists_of(lane, consumer, 3)
    # in the order they came, the first list would have held 6 records of partition 0 and 4 of
    # partition 1 (a share of each); a topic-partition's records stay in order
    assert seen == [[(("t", 0), list(range(6))), (("u", 0), [50, 51, 52]), (("t", 0), [6])],
                    [(("t", 1), list(range(100, 107))), (("t", 1), [107, 108, 109])],
                    [(("t", 0), [7]), (("t", 1), [110])]]
    assert lane.waiting == 0 and lane.taken == 22


def clicks(lane: BatchLane, consumer: Any, partition: int, *offsets_: int) -> None:
    """Records of topic "u" (a partition's clicks, say) to the lane as one chunk."""
    lane.add(consumer, ("u", partition), [SimpleNamespace(topic="u", partition=partition, offset=o, key=b"k",
                                                           value=b"v") for o in offsets_])


@pytest.mark.parametrize("whole_shares", [False, True])
def test_a_feedback_lane_fills_a_list_with_whole_partitions_only(whole_shares: bool) -> None:
    """Three partitions with impressions (topic "t") and clicks ("u") waiting, 6 records each,
    lists of 14: filled with whole chunks, partition 1's clicks go with the first list and its
    impressions with the next (its share learned in two calls, its users' states written at two
    flushes); with `whole_shares` a partition joins a list only with all it has waiting."""
    consumer = FakeConsumer()
    consumer.owned |= {("t", 2), ("u", 0), ("u", 1), ("u", 2)}
    lane = BatchLane(["t", "u"], max_batch=14, high_water=100, low_water=5, whole_shares=whole_shares)
    clicks(lane, consumer, 0, 50, 51)
    add(lane, consumer, *range(4))
    clicks(lane, consumer, 2, 250, 251)
    add(lane, consumer, 200, 201, 202, 203, partition=2)
    add(lane, consumer, 100, 101, 102, 103, partition=1)
    clicks(lane, consumer, 1, 150, 151)
    lane.fetched()
    seen = lists_of(lane, consumer, 2)
    first_list = [(("u", 0), [50, 51]), (("t", 0), list(range(4))), (("u", 2), [250, 251]),
                  (("t", 2), [200, 201, 202, 203])]
    if whole_shares:
        assert seen == [first_list, [(("t", 1), [100, 101, 102, 103]), (("u", 1), [150, 151])]]
    else:  # partition 1's clicks fit beside the first list's 12 records, its impressions do not
        assert seen == [[*first_list, (("u", 1), [150, 151])], [(("t", 1), [100, 101, 102, 103])]]
    assert lane.waiting == 0 and lane.taken == 18


class CountingList(list[Any]):
    """A fetch that counts the records its slices (and their slices) copy."""

    copied = 0

    def __getitem__(self, index: Any) -> Any:
        item = super().__getitem__(index)
        if isinstance(index, slice):
            CountingList.copied += len(item)
            return CountingList(item)
        return item


def test_a_large_fetch_is_handed_over_in_order_copying_each_record_about_once() -> None:
    async def scenario() -> tuple[list[int], int, int]:
        consumer = FakeConsumer()
        lane = BatchLane(["t"], max_batch=7, high_water=10_000, low_water=10)
        lane.add(consumer, ("t", 0), CountingList(message(offset) for offset in range(1000)))
        add(lane, consumer, 1000, 1001, 1002)
        lane.fetched()
        seen: list[int] = []
        longest = 0
        async for batch in lane.batches():
            longest = max(longest, len(records(batch)))
            seen.extend(offsets(batch))
            lane.ack(batch)
            if len(seen) == 1003:
                break
        return seen, longest, lane.waiting

    CountingList.copied = 0
    seen, longest, waiting = asyncio.run(scenario())
    assert seen == list(range(1003)) and longest == 7 and waiting == 0
    # splitting the remainder at every list would copy ~n^2 / (2 max_batch) = ~71,000 records
    assert CountingList.copied <= 2 * 1000


def test_wait_idle_returns_once_what_waited_was_processed_or_at_the_timeout() -> None:
    """The feedback path's courtesy to the request lane (streams.worker.paths.RequestsFirst): it waits
    until no request waits and none is in hand, never longer than the timeout."""

    async def scenario() -> tuple[list[str], float]:
        lane, consumer, order = BatchLane(["t"]), FakeConsumer(), []
        assert not lane.busy
        await lane.wait_idle(5.0)  # idle: at once
        add(lane, consumer, 0, 1)
        lane.fetched()

        async def process() -> None:
            async for batch in lane.batches():
                await asyncio.sleep(0.05)  # ranking and answering
                order.append(f"processed {offsets(batch)}")
                lane.ack(batch)

        task = asyncio.create_task(process())
        await lane.wait_idle(5.0)
        order.append("idle")
        add(lane, consumer, 2)
        lane.fetched()
        await asyncio.sleep(0)  # the list is in hand now
        if lane.busy and not lane.waiting:
            order.append("in hand")
        await lane.wait_idle(5.0)
        order.append("idle")
        task.cancel()
        add(lane, consumer, 3)  # nothing takes it: the wait ends at the timeout
        started = time.monotonic()
        await lane.wait_idle(0.05)
        return order, time.monotonic() - started

    order, waited = asyncio.run(scenario())
    assert order == ["processed [0, 1]", "idle", "in hand", "processed [2]", "idle"]
    assert 0.04 <= waited < 1.0
