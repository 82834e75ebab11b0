"""The worker topology's parts, built without a broker: catalog sync, the request and feedback
paths, the rebalance handler and the stats report."""

import asyncio
import contextlib
import gc
import re
from collections.abc import Sequence
from typing import NamedTuple

import pytest

from online.events import RankRequest, Slate, SlateError, encode_event
from streams.dead_letter import DeadLetter
from streams.worker.catalog import CatalogFollower
from streams.worker.core import WorkerCore
from streams.worker.lanes import BatchLane, GroupCommit
from streams.worker.partition_state import ChangelogSendError
from streams.worker.paths import BatchStats, FeedbackPath, RequestPath, RequestsFirst, by_partition, to_record
from streams.worker.topology import LaneStats, Rebalancer

from .test_core import T0, core, feedback, items, rank_all


class Message(NamedTuple):
    """A consumed record as a lane hands it over (aiokafka's ConsumerRecord has these fields)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


def message(kind: str, offset: int, value: bytes, partition: int = 0) -> Message:
    return Message(f"t.{kind}", partition, offset, b"u1", value)


class Sent:
    """Fake producer-side callables that record what they were given."""

    def __init__(self) -> None:
        self.slates: list[Slate | SlateError] = []
        self.dead: list[DeadLetter] = []
        self.flushes = 0
        self.acknowledged = 0
        self.order: list[str] = []  # "flush", "ack" (an acknowledged flush), request ids, "dead"

    async def slate(self, slate: Slate | SlateError) -> None:
        self.slates.append(slate)
        self.order.append(slate.request_id)

    async def dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        self.dead.extend(letters)
        self.order.extend("dead" for _ in letters)

    async def flush(self, acknowledged: bool = False) -> int:
        self.flushes += 1
        self.acknowledged += acknowledged
        self.order.append("ack" if acknowledged else "flush")
        return 0

    def start_flush(self, acknowledged: bool = False) -> asyncio.Future[int]:
        """As StateTables.start_flush: the writes are taken when called; done at once here."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        future.set_result(0)
        self.flushes += 1
        self.acknowledged += acknowledged
        self.order.append("ack" if acknowledged else "flush")
        return future


class HeldFlushes(Sent):
    """Flushes that Kafka acknowledges only when the test says so (`held`, in the order started)."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[asyncio.Future[int]] = []

    def start_flush(self, acknowledged: bool = False) -> asyncio.Future[int]:
        self.order.append("ack" if acknowledged else "flush")
        self.held.append(asyncio.get_running_loop().create_future())
        return self.held[-1]


def catalog_of_another_worker() -> list[Message]:
    """The catalog topic's records as the worker that embedded the items wrote them."""
    other = core({})
    added, _ = other.add_items(items())
    return [Message("t.catalog", n % 2, n // 2, item.item_id.encode(), value) for n, (item, value) in enumerate(added)]


def caught_up(follower: CatalogFollower, records: list[Message]) -> CatalogFollower:
    follower.apply(records)
    follower.note_positions({0: 10, 1: 10})
    return follower


def test_the_catalog_follower_loads_items_another_worker_embedded() -> None:
    worker, records = core({}), catalog_of_another_worker()
    follower = CatalogFollower(worker, "t.catalog")
    follower._targets = {0: 3, 1: 3}
    assert follower.apply(records[:5]) == 5 and len(worker.catalog) == 5
    follower.note_positions({0: 3, 1: 2})
    assert not follower.caught_up  # partition 1 has not reached the end it had at start-up
    bad, tombstone = Message("t.catalog", 1, 3, b"bad", b"\x00\x01"), Message("t.catalog", 0, 4, b"gone", None)
    follower.apply([records[5], bad, tombstone])
    follower.note_positions({0: 5, 1: 4})
    assert follower.caught_up and len(worker.catalog) == 6 and "i5" in worker.catalog
    assert follower.applied == 6 and follower.bad == 1  # a bad value is counted and skipped, a tombstone ignored


def request_path(worker: WorkerCore, sent: Sent, group_s: float) -> RequestPath:
    follower = caught_up(CatalogFollower(worker, "t.catalog"), catalog_of_another_worker())
    return RequestPath(worker, follower, sent.slate, sent.dead_letters, sent.start_flush, BatchStats(),
                       empty_catalog_wait_s=0.0, group_s=group_s)


def three_requests_and_a_bad_one() -> list[Message]:
    requests = [message("requests", n, encode_event(RankRequest(request_id=f"r{n}", user_id="u1", k=3, time=T0)))
                for n in range(3)]
    return [*requests, message("requests", 3, b"not json")]


def test_the_request_path_answers_a_group_of_requests_after_one_acknowledged_flush() -> None:
    worker, sent = core({}), Sent()
    path = request_path(worker, sent, group_s=60.0)
    asyncio.run(path.handle(three_requests_and_a_bad_one()))
    assert sent.order == ["ack", "r0", "r1", "r2", "dead"]  # no answer before its request is durable
    assert [letter.offset for letter in sent.dead] == [3]
    assert path.stats.batches == 1 and path.stats.records == 4 and path.stats.groups == 1
    assert worker.counts.balanced()


def test_with_no_group_time_each_request_waits_for_its_own_flush() -> None:
    worker, sent = core({}), Sent()
    path = request_path(worker, sent, group_s=0.0)
    asyncio.run(path.handle(three_requests_and_a_bad_one()))
    assert sent.order == ["ack", "r0", "ack", "r1", "ack", "r2", "flush", "dead"]  # a dead request: nothing to ack
    assert path.stats.groups == 4 and worker.counts.balanced()


async def loop_turns(turns: int = 10) -> None:
    """Let the event loop run `turns` times (the request path's tasks and callbacks take their steps)."""
    for _ in range(turns):
        await asyncio.sleep(0)


def test_the_next_group_is_ranked_while_kafka_acknowledges_the_last_and_answers_keep_their_order() -> None:
    worker, sent = core({}), HeldFlushes()
    path = request_path(worker, sent, group_s=0.0)

    async def scenario() -> None:
        handling = asyncio.create_task(path.handle(three_requests_and_a_bad_one()))
        await loop_turns()
        assert sent.order == ["ack", "ack", "ack", "flush"] and worker.counts.ranked == 3  # all ranked, none answered
        sent.held[1].set_result(0)
        await loop_turns()
        assert sent.slates == []  # r1 is durable, but r0 is not: nothing goes out of order
        sent.held[0].set_result(0)
        await loop_turns()
        assert [slate.request_id for slate in sent.slates] == ["r0", "r1"]
        for held in sent.held[2:]:
            held.set_result(0)
        await handling

    asyncio.run(scenario())
    assert sent.order == ["ack", "ack", "ack", "flush", "r0", "r1", "r2", "dead"]
    assert path.stats.groups == 4 and worker.counts.balanced()


def test_a_failed_flush_answers_neither_its_group_nor_any_after_it() -> None:
    worker, sent = core({}), HeldFlushes()
    path = request_path(worker, sent, group_s=0.0)

    async def scenario() -> None:
        handling = asyncio.create_task(path.handle(three_requests_and_a_bad_one()))
        await loop_turns()
        sent.held[0].set_result(0)
        for held in sent.held[1:]:  # as StateTables fails every flush after a failed one
            held.set_exception(ChangelogSendError("a changelog flush was not acknowledged"))
        with pytest.raises(ChangelogSendError):
            await handling

    asyncio.run(scenario())
    assert [slate.request_id for slate in sent.slates] == ["r0"] and sent.dead == []


def test_the_request_path_waits_for_an_empty_catalog_then_answers_with_the_error() -> None:
    worker, sent = core({}), Sent()
    path = RequestPath(worker, caught_up(CatalogFollower(worker, "t.catalog"), []), sent.slate, sent.dead_letters,
                       sent.start_flush, BatchStats(), empty_catalog_wait_s=0.1)
    request = encode_event(RankRequest(request_id="r0", user_id="u1", time=T0))
    asyncio.run(path.handle([message("requests", 0, request)]))
    assert sent.dead[0].error_type == "RankError"
    [answer] = sent.slates  # the caller hears why instead of timing out
    assert isinstance(answer, SlateError) and answer.request_id == "r0" and "no active item" in answer.reason
    assert sent.acknowledged == 0  # nothing to make durable for a request not served


def test_the_feedback_path_learns_each_partition_and_flushes_only_when_asked() -> None:
    worker, sent = core({}), Sent()
    worker.add_items(items())
    rank_all(worker, 4)
    impressions, clicks = feedback(4)
    kinds = {"t.impressions": "impressions", "t.clicks": "clicks"}
    stats = LaneStats().feedback
    path = FeedbackPath(worker, caught_up(CatalogFollower(worker, "t.catalog"), []), kinds, sent.dead_letters,
                        sent.flush, stats)
    records = [message(r.kind, r.offset, r.value, partition=0) for r in [*impressions, *clicks]]
    asyncio.run(path.handle([*records, message("clicks", 9, b"{", partition=1)], flush=False))
    assert sent.flushes == 0 and [letter.partition for letter in sent.dead] == [1]
    assert worker.counts.learned == 8 and worker.counts.balanced()
    asyncio.run(path.handle([], flush=True))
    assert sent.flushes == 1
    assert (stats.batches, stats.groups) == (2, 2)  # one learn call per partition of the first list
    assert 0 < stats.group_s <= stats.busy_s and 0 < stats.group_cpu_s
    assert re.search(r" s busy, 2 partition groups learned in \d+\.\d\d s \(\d+\.\d\d s on the CPU\), the largest "
                     r"of 8 records$", str(stats))  # partition 0's 8


def test_batch_stats_time_groups_on_the_wall_and_the_cpu() -> None:
    stats = BatchStats(group_name="partition groups learned")
    assert str(stats) == "0 batches, 0.0 records/batch, 0.0 s busy"
    stats.add(10, 2.0)
    stats.add_group(1.5, 1.25, 7)
    stats.add_group(0.25, 0.125, 3)
    assert (stats.groups, stats.group_s, stats.group_cpu_s, stats.largest_group) == (2, 1.75, 1.375, 7)
    assert str(stats) == ("1 batches, 10.0 records/batch, 2.0 s busy, 2 partition groups learned in 1.75 s "
                          "(1.38 s on the CPU), the largest of 7 records")


def test_records_group_by_partition_in_order_and_convert_to_core_records() -> None:
    grouped = by_partition([message("clicks", n, b"x", partition=n % 2) for n in range(5)])
    assert {p: [m.offset for m in group] for p, group in grouped.items()} == {0: [0, 2, 4], 1: [1, 3]}
    assert to_record("clicks", message("clicks", 7, b"v", 1)) == ("clicks", "t.clicks", 1, 7, b"u1", b"v")


class Tables:
    def __init__(self) -> None:
        self.changed = 0

    def partitions_changed(self) -> None:
        self.changed += 1


def test_a_rebalance_commits_what_was_processed_then_forgets_the_partitions() -> None:
    worker, sent, tables = core({}), Sent(), Tables()
    worker.add_items(items())
    rank_all(worker, 1)
    lanes = [BatchLane(["t.requests"]), BatchLane(["t.impressions", "t.clicks"])]
    commit = GroupCommit(lanes[1], sent.flush, lambda: 0, interval_s=10.0, max_keys=100)
    order: list[str] = []

    async def flush_producer() -> None:
        order.append(f"producer after {sent.flushes} state flush")

    rebalancer = Rebalancer(lanes, commit, worker, tables, flush_producer)
    assert worker.router(0) is worker.router(0)  # a partition's engines, cached
    before = worker.router(0)
    dropped = asyncio.run(rebalancer.swap(drop_waiting=True))
    assert dropped == [0, 0] and order == ["producer after 1 state flush"] and tables.changed == 1
    assert worker.router(0) is not before  # rebuilt from the (possibly moved) state



def test_an_assignment_settles_the_collector_with_the_workers_threshold() -> None:
    worker, sent, tables = core({}), Sent(), Tables()
    lanes = [BatchLane(["t.requests"]), BatchLane(["t.impressions", "t.clicks"])]
    commit = GroupCommit(lanes[1], sent.flush, lambda: 0, interval_s=10.0, max_keys=100)

    async def flush_producer() -> None:
        pass

    class Assigned(NamedTuple):
        topic: str
        partition: int

    rebalancer = Rebalancer(lanes, commit, worker, tables, flush_producer, young_threshold=12_345)
    thresholds = gc.get_threshold()
    try:
        asyncio.run(rebalancer.on_assigned(None, {Assigned("t.clicks", 1), Assigned("t.requests", 0)}))
        assert gc.get_threshold() == (12_345, *thresholds[1:]) and gc.get_freeze_count() > 0
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
    assert rebalancer.assigned == {1} and tables.changed == 1


def test_the_stats_report_counts_batches_and_the_feedback_window() -> None:
    worker, stats = core({}), LaneStats()
    stats.feedback.add(10, 0.5)

    class Flushes:
        records_sent, flushes, flush_s = 4, 2, 0.25

    lane = BatchLane(["t.clicks"])
    commit = GroupCommit(lane, Sent().flush, lambda: 0, 1.0, 10)
    lines = stats.lines(worker, Flushes(), lane, commit)
    assert lines[0].startswith("counts Counts(received=0")
    assert lines[1] == "batches requests: 0 batches, 0.0 records/batch, 0.0 s busy; " \
                       "feedback: 1 batches, 10.0 records/batch, 0.5 s busy"
    assert lines[2] == "dead letters 0 sent, 0 retries, 0 lost"
    assert lines[3] == "changelog 4 state records sent in 2 flushes, 0.25 s"
    assert lines[4] == "collector: 0 passes (0 young, 0 middle, 0 full) in 0.000 s since start" and len(lines) == 5
    lane.first_taken_at, commit.last_commit_at, commit.committed, lane.taken = 1.0, 2.0, 10, 10
    assert stats.lines(worker, Flushes(), lane, commit)[5].startswith("feedback lane: 10 records taken from 1.000")


def test_while_requests_come_in_feedback_is_learned_in_pieces_each_after_the_requests_waiting() -> None:
    """A learn call holds the event loop (~25 us a record); while requests come in, the feedback
    path learns in pieces and lets the request lane finish what waits before each one, so a
    request waits for at most one piece, not a whole list."""
    from types import SimpleNamespace

    worker, sent = core({}), Sent()
    worker.add_items(items())
    rank_all(worker, 4)
    impressions, clicks = feedback(4)
    kinds = {"t.impressions": "impressions", "t.clicks": "clicks"}
    request_lane = BatchLane(["t.requests"])
    first = RequestsFirst(request_lane, piece_records=3, max_wait_s=5.0)
    stats = BatchStats()
    path = FeedbackPath(worker, caught_up(CatalogFollower(worker, "t.catalog"), []), kinds, sent.dead_letters,
                        sent.flush, stats, requests_first=first)
    records = [message(r.kind, r.offset, r.value) for r in [*impressions, *clicks]]
    assert [len(piece) for piece in first.pieces(records)] == [8]  # no request yet: one call

    class Owner:
        def assignment(self) -> set[object]:
            return {("t.requests", 0)}

        def ack_offsets(self, tp: object, offsets: list[int]) -> None:
            pass

    order: list[str] = []
    learn = worker.learn

    def learning(batch):  # type: ignore[no-untyped-def]
        order.append(f"learn {len(batch)}")
        return learn(batch)

    worker.learn = learning  # type: ignore[method-assign]

    async def scenario() -> None:
        async def rank() -> None:
            async for batch in request_lane.batches():
                await asyncio.sleep(0.02)  # ranking, the acknowledged flush
                order.append(f"answer {len(batch[0].records)}")
                request_lane.ack(batch)

        answering = asyncio.create_task(rank())
        request_lane.add(Owner(), ("t.requests", 0), [SimpleNamespace(offset=0)])
        request_lane.fetched()
        await asyncio.sleep(0.01)  # the request lane took it: it is serving now
        assert first.serving() and [len(piece) for piece in first.pieces(records)] == [3, 3, 2]
        learning_task = asyncio.create_task(path.handle(records, flush=False))
        await asyncio.sleep(0)
        request_lane.add(Owner(), ("t.requests", 0), [SimpleNamespace(offset=1)])  # arrives meanwhile
        request_lane.fetched()
        await learning_task
        answering.cancel()

    asyncio.run(scenario())
    assert order == ["answer 1", "answer 1", "learn 3", "learn 3", "learn 2"]  # both requests first
    assert worker.counts.learned == 8 and stats.groups == 3


def test_requests_count_as_coming_in_for_the_serving_window() -> None:
    """Within `recent_s` of the request lane's last list the feedback path learns in pieces (a
    sparse stream of requests, one every few seconds, keeps it so); after it, whole shares."""
    import time

    lane = BatchLane(["t.requests"])
    first = RequestsFirst(lane, piece_records=2, recent_s=5.0)
    group = list(range(5))
    assert not first.serving() and first.pieces(group) == [group]  # no request yet
    lane.last_taken_monotonic = time.monotonic() - 4.0
    assert first.serving() and first.pieces(group) == [[0, 1], [2, 3], [4]]
    lane.last_taken_monotonic = time.monotonic() - 6.0
    assert not first.serving() and first.pieces(group) == [group]


def test_feedback_waits_until_the_catalog_is_loaded() -> None:
    """After a restart the catalog topic is read again: feedback learned before it is loaded would
    name items the catalog lacks, and be dead-lettered for it."""
    worker, sent = core({}), Sent()
    follower = CatalogFollower(worker, "t.catalog")
    follower._targets = {0: 6}
    kinds = {"t.impressions": "impressions", "t.clicks": "clicks"}
    path = FeedbackPath(worker, follower, kinds, sent.dead_letters, sent.flush, BatchStats())
    impressions, _ = feedback(1)

    async def scenario() -> None:
        learning = asyncio.ensure_future(path.handle([message(r.kind, r.offset, r.value) for r in impressions]))
        await asyncio.sleep(0.3)
        assert not learning.done()  # the catalog is not loaded yet
        follower.apply(catalog_of_another_worker())
        follower.note_positions({0: 6})
        await asyncio.wait_for(learning, 5)

    asyncio.run(scenario())
    assert worker.counts.learned == 1 and not sent.dead


def test_holding_several_lanes_leaves_none_held_when_cancelled_while_entering() -> None:
    """A rebalance handler cancelled while it waits for the second lane must not keep the first:
    a lane left held would take no list for good."""
    from streams.worker.topology import _held

    async def scenario() -> tuple[bool, bool]:
        first, second = BatchLane(["a"]), BatchLane(["b"])
        async with second.held(drop=False):  # the second lane has a list in hand
            entering = asyncio.ensure_future(_held([first, second], drop=False).__aenter__())
            await asyncio.sleep(0.01)
            first_was_held = first._in_hand.locked()
            entering.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await entering
        return first_was_held, first._in_hand.locked()

    first_was_held, first_still_held = asyncio.run(scenario())
    assert first_was_held and not first_still_held


def test_a_lane_cancelled_while_the_worker_runs_says_so(caplog) -> None:
    """A cancelled lane task ends (CancelledError is no Exception); while the app runs it must not
    end unseen."""
    from streams.worker.topology import drive

    class App:
        should_stop = False

    async def scenario(app: App) -> None:
        lane = BatchLane(["t"])
        task = asyncio.ensure_future(drive(app, lane, lambda batch: asyncio.sleep(0)))  # type: ignore[arg-type]
        await asyncio.sleep(0.01)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    running, stopping = App(), App()
    stopping.should_stop = True
    with caplog.at_level("ERROR", logger="slatestream.worker"):
        asyncio.run(scenario(stopping))
        assert "cancelled while the worker runs" not in caplog.text
        asyncio.run(scenario(running))
    assert "batch lane of ['t'] cancelled while the worker runs" in caplog.text
