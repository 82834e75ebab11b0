"""Every private name of faust-streaming the worker uses, in one module, checked against one version.

The worker needs Faust internals in a few places where no public API exists. They are all here,
and `check_faust_version()` (called by `streams.worker.app.make_app`) refuses to run on any
faust-streaming other than `FAUST_VERSION`, the version these were read from
(tests/streams/worker/test_faust_private.py fails on any other). A version bump means reading
Faust's new code for each name below, then moving `FAUST_VERSION`.

1. **The drain loop** (`BatchDrainConsumer._drain_messages`, a copy of Faust's
   `Consumer._drain_messages` with one change): faust-streaming 0.15.3 wraps every message in
   `wait_first(callback(message), suspend_flow.wait())`, two new tasks and an `asyncio.wait` per
   record, which caps a worker at a few thousand records/s on 2 cores. The copy awaits the
   callback directly while flow is not suspended and falls back to `wait_first` when it is.
   It also feeds batch lanes (`streams.worker.lanes`): each partition's records of a lane topic go
   to the lane as one chunk (`_getmany_past_lanes`, `_to_lane`; the core's records: `lean_fetches`),
   Faust's read-offset, gap and commit bookkeeping (`_read_offset`, `_add_gap`,
   `_commit_every`, `_n_acked`) done once per chunk, and acked as runs of offsets
   (`ack_offsets`: `_committed_offset`, `_acked_index`, `_acked`, `_waiting_for_ack`).
   After Faust's seek back to the committed offsets (`perform_seek`) the lanes drop what they
   held from before it, fetched again from there (Faust resumes the stream partitions before
   that seek after a recovery, so a fetch in between brought records that come again).
   Records a fetch brought and nothing took (the flow stopped, a rebalance began, the partition
   was paused or revoked meanwhile) are fetched again (`_fetch_again`, `rewind_positions`: the
   consumer's `_thread` and its `_ensure_consumer`; changelogs, `_is_changelog_tp`, are left to
   Faust's recovery), where Faust drops them and counts on its seek to the committed offsets,
   which moves no partition that has none.
   Topics fetched by another consumer (`SlatestreamApp.fetch_apart`: the requests, fetched by
   streams.worker.request_fetcher) are left out of every fetch (`_getmany`, Faust's aiokafka
   driver's fetch), and their records' offset gaps are noted from Faust's committed offset
   (`note_gaps`); they stay assigned, and their acked offsets committed, here, Faust's
   livelock check (`verify_event_path`) passes them by, and that consumer is told when Faust
   pauses and resumes them (its public `pause_partitions` / `resume_partitions`, overridden).
2. **The app's transport and producer** (`SlatestreamApp._new_transport`, `_new_producer`):
   the consumer above, and a producer buffer bound of 20,000 queued messages (every table write
   queues one; Faust stalls every stream above 100).
3. **The state table's RocksDB per partition** (`partition_db`: `table.data._db_for_partition`)
   and the key of its persisted changelog offset (`persisted_offset_key`: the rocksdb store's
   `offset_key`): the worker writes each partition's state directly and sends the changelog
   itself (`streams.worker.partition_state`).
4. **The raw aiokafka producer** (`aiokafka_producer`: `app.producer._ensure_producer()`), for
   changelog record batches.
5. **The current event** (`partition_context`: `faust.streams._current_event`), the context
   variable Faust tables route writes by. The worker no longer writes through Faust tables; only
   the Faust floor in bench/faust_floor.py does (the cost of state in a changelogged Faust table).

What Faust still provides, and what a plain consumer group would cost: docs/worker.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, cast

import faust
from faust.streams import _current_event
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, ProducerT, TransportT
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

from streams.worker.aiokafka_private import lean_fetches
from streams.worker.lanes import BatchLane, fetch_wait_s
from streams.worker.pins import require_pinned
from streams.worker.positions import first_offsets, partitions_at, rewind_positions

FAUST_VERSION = "0.15.3"
"""The faust-streaming version every name here was read from."""


class FaustVersionError(RuntimeError):
    """The installed faust-streaming is not the version this module was checked against."""


def check_faust_version(installed: str | None = None) -> None:
    """Raise FaustVersionError unless faust-streaming is exactly `FAUST_VERSION`."""
    require_pinned("faust-streaming", faust.__version__ if installed is None else installed, FAUST_VERSION,
                   "streams/worker/faust_private.py", FaustVersionError)


class BatchDrainConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer, feeding streams without two tasks per record."""

    _lean_consumer: Any = None  # the aiokafka consumer `lean_fetches` was installed in

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - runs in workers
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        suspended = self.suspend_flow.is_set
        lanes, kinds = (app.batch_lanes, app.record_kinds) if isinstance(app := self.app, SlatestreamApp) else ({}, {})
        lane_set = set(lanes.values())
        since_yield = 0
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(faust_consumer.CONSUMER_FETCHING)
                wait_s = fetch_wait_s(lane_set)  # 1 s, shorter while a lane holds partitions back
                records = self._getmany_past_lanes(wait_s, lanes, kinds) if lanes else getmany(timeout=wait_s)
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in records:
                        since_yield += 1
                        if since_yield > 100:
                            await asyncio.sleep(0)
                            since_yield = 0
                        offset = message.offset
                        read_offset = get_read_offset(tp)
                        if read_offset is not None and offset < read_offset:
                            continue  # Faust drops these too (already read)
                        if read_offset and offset - read_offset > 1 and acks_enabled_for(message.topic):
                            await self._add_gap(tp, read_offset + 1, offset)
                        if commit_every is not None and self._n_acked >= commit_every:
                            self._n_acked = 0
                            await self.commit()
                        if suspended():
                            await self.wait_first(callback(message), self.suspend_flow.wait())
                        else:
                            await callback(message)
                        set_read_offset(tp, offset)
                    for lane in lane_set:
                        lane.fetched()
                self.diag.unset_flag(faust_consumer.CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        finally:
            self.diag.unset_flag(faust_consumer.CONSUMER_FETCHING)

    async def _getmany_past_lanes(self, timeout: float, lanes: dict[str, BatchLane], kinds: Mapping[str, str] = {},
                                  ) -> AsyncIterator[tuple[Any, Any]]:
        """Faust's `Consumer.getmany`, except that each partition's records of a lane topic go
        to the lane as one chunk, as aiokafka parsed them (no `ConsumerMessage`, no step per
        record); the other records are yielded as Faust does (round robin, as messages).

        Unlike Faust's, no fetched record is lost: what is not handed on (the flow stopped, a
        rebalance began, the partition was paused or revoked since the fetch) is fetched again
        (`_fetch_again`), not left behind the partition's position. Topics in `kinds`: core `Record`s."""
        consumer, thread = self._thread._ensure_consumer(), self._thread  # `lean_fetches` once per consumer
        if kinds and consumer is not self._lean_consumer and await thread.call_thread(lean_fetches, consumer, kinds):
            self._lean_consumer = consumer
        records, active_partitions = await self._wait_next_records(timeout)
        generation_id = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return
        if not self.flow_active:
            await self._fetch_again(first_offsets(records.items()))
            try:  # as Faust's getmany: seek back to the committed offsets
                await self.perform_seek()
            except Exception as error:
                self.log.warning(f"exception performing seek when flow not active {error}")
            return

        def taking(tp: Any) -> bool:
            return active_partitions is None or tp in active_partitions or tp in self._buffered_partitions

        others: dict[Any, Any] = {}
        not_taken: dict[Any, int] = {}
        fetches = list(records.items())
        for index, (tp, fetched) in enumerate(fetches):
            lane = lanes.get(tp.topic)
            if lane is None:
                others[tp] = fetched
            elif fetched and not taking(tp):
                not_taken[tp] = fetched[0].offset
            elif fetched and not await self._to_lane(lane, tp, fetched, generation_id):
                # a rebalance began: Faust cancels the rest of the fetch too
                await self._fetch_again({**not_taken, **first_offsets(fetches[index:])})
                return
        taken = dict.fromkeys(others, 0)  # records of each partition handed on or skipped
        to_message = self._to_message
        for tp, record in self.scheduler.iterate(others):  # Faust's loop (lane partitions skip its
            # track_tp_end_offset: the monitor's lag figures for lane topics are not kept)
            if not self._flowing(generation_id):
                break
            taken[tp] += 1
            if taking(tp):
                self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                yield tp, to_message(tp, record)
            else:
                not_taken.setdefault(tp, record.offset)
        for tp, fetched in others.items():
            if taken[tp] < len(fetched):
                not_taken.setdefault(tp, fetched[taken[tp]].offset)
        await self._fetch_again(not_taken)

    async def _fetch_again(self, firsts: dict[Any, int]) -> None:
        """Fetch each partition's records again from offset `firsts[tp]`, the first one not
        handed on (`rewind_positions`, in the consumer's thread; changelog partitions are left to
        Faust's recovery). Faust drops such records and relies on the seek to the committed
        offsets after a rebalance, which leaves a partition without a committed offset at its
        position past them: a worker that took over partitions its dead peer never committed
        lost every record fetched while its flow was stopped (docs/reliability.md)."""
        firsts = {tp: offset for tp, offset in firsts.items() if not self._is_changelog_tp(tp)}
        if not firsts:
            return
        thread = self._thread
        try:
            moved = await thread.call_thread(rewind_positions, thread._ensure_consumer(), firsts)
        except Exception as error:
            self.log.warning("records fetched and not taken (%s) could not be fetched again: %r",
                             partitions_at(firsts), error)
            return
        if moved:
            self.log.info("fetched again, records not taken (flow stopped, paused or revoked): %s",
                          ", ".join(f"{tp.topic}[{tp.partition}] {before}->{after}"
                                    for tp, (before, after) in sorted(moved.items())))

    async def perform_seek(self) -> None:
        """Faust's seek of every assigned partition back to its committed offset (its read offsets
        with it), then the lanes drop what waits, which is fetched again from there.

        After a recovery Faust resumes the stream partitions and only then awaits this seek, so a
        fetch served in between reaches the lanes and the same records come again after it: a
        lane held both copies (learned once, by the offsets in the state, but received and
        processed twice; docs/reliability.md). Dropping loses nothing: no waiting record was
        acked, each partition goes back to its first record dropped (`_fetch_again`, never
        forward: a partition without a committed offset is not moved by Faust's seek, nor one
        whose records came after it), and its read offset goes back to that record, so
        `_to_lane` takes it again."""
        await super().perform_seek()
        app = self.app
        firsts: dict[Any, int] = {}
        for lane in set(app.batch_lanes.values()) if isinstance(app, SlatestreamApp) else ():
            firsts.update(lane.drop_waiting_for_seek())  # a topic-partition belongs to one lane
        if not firsts:
            return
        for tp, first in firsts.items():
            read_offset = self._read_offset.get(tp)
            if read_offset is not None and read_offset > first:
                self._read_offset[tp] = first
        self.log.info("lanes dropped what they held from before the seek to the committed offsets: %s",
                      partitions_at(firsts))
        await self._fetch_again(firsts)

    def _flowing(self, generation_id: int) -> bool:
        """False once a rebalance began (flow stopped) or happened (new generation) since
        the fetch of `generation_id`: its records must not reach a lane any more."""
        return bool(self.flow_active) and self.app.consumer_generation_id == generation_id

    async def _to_lane(self, lane: BatchLane, tp: Any, fetched: list[Any], generation_id: int) -> bool:
        """Hand one partition's fetched records to its lane, with Faust's per-record
        bookkeeping done once per chunk: drop what was read already, note offset gaps (so
        commits can pass them), commit every `commit_every` acks, move the read offset.
        Returns False (nothing handed over, the read offset unmoved) when a rebalance began:
        checked before and after the awaits here, so no chunk of an old assignment reaches the
        lane after the revocation handler dropped what waited (Faust checks the flow before
        every record it yields; a stale chunk learned first would make the redelivered records
        before it look like replays).

        A gap is the offsets strictly between two records read (`_add_gap` takes both ends
        inclusive). Faust's own loop passes the next record's offset as the end, so that record
        is both a gap and acked, and the duplicate in its acked list holds the next commit
        back by one round; and it skips the check after offset 0."""
        if not self._flowing(generation_id):
            return False
        read_offset = self._read_offset[tp]
        if read_offset is not None and fetched[0].offset < read_offset:
            fetched = [record for record in fetched if record.offset >= read_offset]
            if not fetched:
                return True
        await self._note_gaps(tp, read_offset, fetched)
        if self._commit_every is not None and self._n_acked >= self._commit_every:
            self._n_acked = 0
            await self.commit()
        if not self._flowing(generation_id):
            return False  # the gaps noted stay right: those offsets hold no records
        lane.add(self, tp, fetched)
        self._read_offset[tp] = fetched[-1].offset
        return True

    async def _note_gaps(self, tp: Any, previous: int | None, fetched: Sequence[Any]) -> None:
        """Note the offsets missing before and among `fetched` (a partition's records in order,
        `previous` the offset read before them), so that commits pass them."""
        if not self.app.topics.acks_enabled_for(tp.topic):
            return
        if fetched[-1].offset - fetched[0].offset + 1 == len(fetched):  # contiguous: one check
            if previous is not None and fetched[0].offset - previous > 1:
                await self._add_gap(tp, previous + 1, fetched[0].offset - 1)
            return
        for record in fetched:  # offsets missing inside the fetch (compaction, transaction markers)
            if previous is not None and record.offset - previous > 1:
                await self._add_gap(tp, previous + 1, record.offset - 1)
            previous = record.offset

    async def note_gaps(self, tp: Any, previous: int | None, fetched: Sequence[Any]) -> None:
        """`_note_gaps` for records another consumer fetched (streams.worker.request_fetcher):
        with `previous` None (its first fetch of the partition), from the committed offset."""
        if previous is None:
            committed = self._committed_offset.get(TP(tp.topic, tp.partition))
            previous = None if committed is None else committed - 1
        await self._note_gaps(tp, previous, fetched)

    async def _getmany(self, active_partitions: Any, timeout: float) -> Any:
        """Faust's fetch, never taking the records of the topics fetched apart (`fetch_apart`;
        aiokafka fetches each such partition once an assignment and keeps that fetch buffered)."""
        apart = self.app.fetched_apart if isinstance(self.app, SlatestreamApp) else frozenset()
        if apart and active_partitions is not None:
            active_partitions = {tp for tp in active_partitions if tp.topic not in apart}
            if not active_partitions:  # aiokafka would take an empty set for "every partition"
                await asyncio.sleep(timeout)
                return {}
        return await super()._getmany(active_partitions, timeout)

    def pause_partitions(self, tps: Iterable[Any]) -> None:
        """Faust's pause (each assignment, until the state is recovered; each revocation), told
        to the consumer of the topics fetched apart too (`SlatestreamApp.fetch_apart`)."""
        tps = list(tps)
        super().pause_partitions(tps)
        self._tell_apart(tps, taking=False)

    def resume_partitions(self, tps: Iterable[Any]) -> None:
        """Faust's resume (the state recovered), told as `pause_partitions` is."""
        tps = list(tps)
        super().resume_partitions(tps)
        self._tell_apart(tps, taking=True)

    def _tell_apart(self, tps: list[Any], taking: bool) -> None:
        app = self.app
        if isinstance(app, SlatestreamApp) and app.apart_takes is not None:
            apart = [tp for tp in tps if tp.topic in app.fetched_apart]
            if apart:
                app.apart_takes(apart, taking)

    def verify_event_path(self, now: float, tp: Any) -> None:
        """Faust's livelock check of an assigned partition (fetched lately? processed? committed?),
        except for the topics fetched apart: this consumer fetches them once an assignment, by
        design, and Faust would log an error for each of them every few seconds."""
        if isinstance(self.app, SlatestreamApp) and tp.topic in self.app.fetched_apart:
            return None
        return super().verify_event_path(now, tp)

    def ack_offsets(self, tp: Any, offsets: list[int]) -> None:
        """Faust's `ack` for a lane's records of `tp` (never tracked as messages): each offset
        not acked yet is marked acked, and Faust commits them once contiguous."""
        with ack_lock:
            if self.app.topics.acks_enabled_for(tp.topic):
                committed = self._committed_offset[tp]
                acked_index = self._acked_index[tp]
                fresh = [offset for offset in offsets
                         if (committed is None or offset >= committed) and offset not in acked_index]
                acked_index.update(fresh)
                self._acked[tp].extend(fresh)
                self._n_acked += len(fresh)
            notify(self._waiting_for_ack)

    def on_buffer_full(self, tp: Any) -> None:
        """Pause `tp` (Faust's flow control), as Faust's own partition type: a record's `tp` is
        aiokafka's TopicPartition, and Faust asserts its active partitions are `TP`s."""
        super().on_buffer_full(TP(tp.topic, tp.partition))

    def on_buffer_drop(self, tp: Any) -> None:
        """Resume `tp` (see `on_buffer_full`)."""
        super().on_buffer_drop(TP(tp.topic, tp.partition))

    def forget_paused(self, tp: Any) -> None:
        """Un-pause `tp` without resuming it (a rebalance: the new assignment decides)."""
        self._buffered_partitions.discard(TP(tp.topic, tp.partition))

    async def wait_empty(self) -> None:
        """Settle the batch lanes (drop what waits, finish the list in hand), then Faust's wait."""
        app = self.app
        if isinstance(app, SlatestreamApp):
            for lane in set(app.batch_lanes.values()):
                dropped = await lane.settle()
                if dropped:
                    self.log.info("batch lane dropped %d waiting records (redelivered after the rebalance)",
                                  dropped)
        await super().wait_empty()


class BatchDrainTransport(faust_aiokafka.Transport):
    """The kafka:// transport with `BatchDrainConsumer`."""

    Consumer = BatchDrainConsumer


class SlatestreamApp(faust.App):
    """A faust.App with `BatchDrainTransport`, batch lanes and a larger producer buffer bound."""

    producer_buffer_messages = 20_000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batch_lanes: dict[str, BatchLane] = {}
        self.record_kinds: dict[str, str] = {}  # {topic: the core's record kind}, see add_batch_lane
        self.fetched_apart: frozenset[str] = frozenset()
        self.apart_takes: Callable[[list[Any], bool], None] | None = None

    def add_batch_lane(self, lane: BatchLane, record_kinds: Mapping[str, str] | None = None) -> None:
        """Route the lane's topics past the streams (subscribe them with `app.topics.add`), the
        records of those in `record_kinds` ({topic: kind}) fetched as the core's `Record`s."""
        for topic in lane.topics:
            self.batch_lanes[topic] = lane
        self.record_kinds.update(record_kinds or {})

    def fetch_apart(self, topics: Iterable[str], takes: Callable[[list[Any], bool], None]) -> None:
        """Keep `topics` in the group's assignment (subscribe them with `app.topics.add`) and
        commit their acked offsets, but never take their records: another consumer fetches them
        (streams.worker.request_fetcher), told by `takes(partitions, taking)` when Faust pauses
        and resumes them."""
        self.fetched_apart = self.fetched_apart | frozenset(topics)
        self.apart_takes = takes

    def _new_transport(self) -> TransportT:
        return cast(TransportT, BatchDrainTransport(self.conf.broker_consumer, self))

    def _new_producer(self) -> ProducerT:
        producer = super()._new_producer()
        producer.buffer.max_messages = self.producer_buffer_messages
        return producer


def partition_db(table: Any, partition: int) -> Any:
    """The rocksdict `Rdict` of one partition of a rocksdb:// Faust table (opened by Faust)."""
    return table.data._db_for_partition(partition)


def persisted_offset_key(table: Any) -> bytes:
    """The key under which Faust keeps a partition's persisted changelog offset in its RocksDB."""
    key = table.data.offset_key
    return key if isinstance(key, bytes) else str(key).encode()


def aiokafka_producer(app: Any) -> Any:
    """The started AIOKafkaProducer behind a Faust app's producer."""
    return app.producer._ensure_producer()


@contextlib.contextmanager
def partition_context(event: Any) -> Iterator[None]:
    """Make `event` Faust's current event, so table reads and writes use its partition."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)
