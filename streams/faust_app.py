"""The Faust app the worker runs: connection settings, and fixes for Faust's hot path.

`make_app(settings)` builds a `SlatestreamApp` (a `faust.App`) from `StreamSettings`.
It differs from a plain `faust.App` in three places, each measured in bench/worker_throughput.py
and docs/worker.md:

1. **The consumer feeds streams without a task per message.** faust-streaming 0.15.3's
   `Consumer._drain_messages` wraps every message in `wait_first(callback(message),
   suspend_flow.wait())`: two new tasks and an `asyncio.wait` per record, so the feeding
   loop, not the agents, caps a worker at a few thousand records/s on 2 cores.
   `BatchDrainConsumer` awaits the callback directly while flow is not suspended and falls
   back to Faust's `wait_first` when it is (rebalances), so suspension works as before.
   The override is a copy of Faust's method with that one change; it is applied only on
   the Faust version it was copied from (`FAUST_VERSION`), any other version runs Faust's own.
2. **Table writes do not stall the streams.** Every table write queues one changelog
   message; Faust stops feeding every stream whenever more than 100 are queued and drains
   them one by one (`ProducerBuffer.wait_until_ebb`). A worker writes up to one state per
   user per batch, so `producer_buffer_messages` (default 20,000) raises that bound. The
   guarantee does not depend on it: Faust flushes the producer before committing offsets.
   Producer batches are larger (`producer_max_batch_size`), because ~5 KB state values
   fill Faust's 16 KB default batch after three writes.
3. **Batch lanes.** Records of the topics of a `streams.batch_lane.BatchLane` registered
   with `SlatestreamApp.add_batch_lane` skip Faust's per-record path altogether: the drain
   loop fetches through `_getmany_past_lanes` (Faust's `getmany`, except that each
   partition's records of a lane topic go to the lane as one chunk of aiokafka
   ConsumerRecords, Faust's per-record bookkeeping done once per chunk by `_to_lane`, and no
   `ConsumerMessage` built), a task takes them in lists and acks them in runs of offsets
   (`ack_offsets`, Faust's `ack` without a message); on a rebalance the
   worker's handlers hold the lanes (`BatchLane.held`, streams.worker). The `wait_empty`
   override below settles the lanes too, but Faust calls it only with `stream_wait_empty`
   on, which this app turns off. Lanes need the pinned Faust version (the drain loop
   above); on any other version their records reach the agents' streams as usual.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import faust
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, ProducerT, TransportT
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

from streams.batch_lane import BatchLane
from streams.settings import StreamSettings
from streams.state_changelog import worker_app_id

FAUST_VERSION = "0.15.3"
"""The faust-streaming version `BatchDrainConsumer._drain_messages` was copied from."""


class BatchDrainConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer, feeding streams without two tasks per record."""

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - runs in workers
        if faust.__version__ != FAUST_VERSION:
            await super()._drain_messages(fetcher)
            return
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        suspended = self.suspend_flow.is_set
        lanes = cast(SlatestreamApp, self.app).batch_lanes if isinstance(self.app, SlatestreamApp) else {}
        lane_set = set(lanes.values())
        since_yield = 0
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(faust_consumer.CONSUMER_FETCHING)
                records = self._getmany_past_lanes(1.0, lanes) if lanes else getmany(timeout=1.0)
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

    async def _getmany_past_lanes(self, timeout: float, lanes: dict[str, BatchLane],
                                  ) -> AsyncIterator[tuple[Any, Any]]:
        """Faust's `Consumer.getmany`, except that each partition's records of a lane topic go
        to the lane as one chunk, as aiokafka parsed them (no `ConsumerMessage`, no step per
        record); the other records are yielded as Faust does (round robin, as messages)."""
        records, active_partitions = await self._wait_next_records(timeout)
        generation_id = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return
        if not self.flow_active:
            try:  # as Faust's getmany: seek back to the committed offsets
                await self.perform_seek()
            except Exception as error:
                self.log.warning(f"exception performing seek when flow not active {error}")
            return
        others: dict[Any, Any] = {}
        for tp, fetched in records.items():
            lane = lanes.get(tp.topic)
            if lane is None:
                others[tp] = fetched
            elif fetched and (active_partitions is None or tp in active_partitions
                              or tp in self._buffered_partitions):
                if not await self._to_lane(lane, tp, fetched, generation_id):
                    return  # a rebalance began: Faust cancels the rest of the fetch too
        to_message = self._to_message
        for tp, record in self.scheduler.iterate(others):  # Faust's loop (lane partitions skip its
            # track_tp_end_offset: the monitor's lag figures for lane topics are not kept)
            if not self.flow_active or self.app.consumer_generation_id != generation_id:
                break
            if active_partitions is None or tp in active_partitions or tp in self._buffered_partitions:
                self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                yield tp, to_message(tp, record)

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
        if self.app.topics.acks_enabled_for(tp.topic):
            previous = read_offset
            if fetched[-1].offset - fetched[0].offset + 1 == len(fetched):  # contiguous: one check
                if previous is not None and fetched[0].offset - previous > 1:
                    await self._add_gap(tp, previous + 1, fetched[0].offset - 1)
            else:  # offsets missing inside the fetch (compaction, transaction markers)
                for record in fetched:
                    if previous is not None and record.offset - previous > 1:
                        await self._add_gap(tp, previous + 1, record.offset - 1)
                    previous = record.offset
        if self._commit_every is not None and self._n_acked >= self._commit_every:
            self._n_acked = 0
            await self.commit()
        if not self._flowing(generation_id):
            return False  # the gaps noted stay right: those offsets hold no records
        lane.add(self, tp, fetched)
        self._read_offset[tp] = fetched[-1].offset
        return True

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

    def add_batch_lane(self, lane: BatchLane) -> bool:
        """Route the lane's topics past the streams; False (records go to streams) when the
        installed Faust is not the version the drain loop was copied from."""
        if faust.__version__ != FAUST_VERSION:
            return False
        for topic in lane.topics:
            self.batch_lanes[topic] = lane
        return True

    def _new_transport(self) -> TransportT:
        return cast(TransportT, BatchDrainTransport(self.conf.broker_consumer, self))

    def _new_producer(self) -> ProducerT:
        producer = super()._new_producer()
        producer.buffer.max_messages = self.producer_buffer_messages
        return producer


def broker_credentials(settings: StreamSettings) -> faust.SASLCredentials | faust.SSLCredentials | None:
    """Faust credentials for the settings' security protocol (None for PLAINTEXT); the TLS
    context presents the client certificate when `ssl_certfile` is set (mutual TLS)."""
    if settings.security_protocol.startswith("SASL_"):
        mechanism, username, password = settings.sasl_credentials()
        return faust.SASLCredentials(
            username=username, password=password.get_secret_value(), mechanism=mechanism,
            ssl_context=settings.ssl_context() if settings.security_protocol == "SASL_SSL" else None,
        )
    if settings.security_protocol == "SSL":
        return faust.SSLCredentials(settings.ssl_context())
    return None


def make_app(settings: StreamSettings) -> SlatestreamApp:
    """The worker's Faust app: one consumer group per (app id, topic prefix), RocksDB tables."""
    return SlatestreamApp(
        worker_app_id(settings),
        broker=settings.broker_url,
        broker_credentials=broker_credentials(settings),
        store="rocksdb://",
        datadir=str(settings.store_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        web_enabled=False,
        broker_session_timeout=settings.broker_session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.broker_session_timeout_s / 6),
        consumer_auto_offset_reset="earliest",
        stream_wait_empty=False,
        producer_max_batch_size=settings.producer_max_batch_bytes,
        producer_linger=settings.producer_linger_ms / 1000,
    )
