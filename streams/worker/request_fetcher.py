"""Requests fetched by a consumer of their own, so that no backlog of feedback delays them.

Faust's one consumer fetched every topic of the worker together: while the worker learned a
backlog, each fetch brought megabytes of feedback per partition, a request partition was fetched
again only once its buffered records were taken, and the loop that takes them came round only
between the learner's lists: requests waited seconds before they were ranked
(bench/backlog_latency.py, docs/worker.md). Here the request partitions stay in the worker's
consumer group, which decides which worker ranks which partition, and Faust still commits their
offsets (the lane's acks go to Faust's consumer, `ack_offsets`), but Faust never takes their
records (`SlatestreamApp.fetch_apart`). This consumer, in the worker's event loop, is assigned
the request partitions the group gave the worker (`assign_from`) and fetches them from the
group's committed offsets: its group id is the worker's, used only to read those offsets
(a manually assigned aiokafka consumer joins no group, and this one commits nothing). Each
fetch's records of a partition go to the request lane as one chunk, as Faust's consumer hands
the feedback lane its records, and the lane sees this object as its consumer (`assignment`,
`ack_offsets`, `on_buffer_full`, `on_buffer_drop`, `forget_paused`, `highwater`).

Rebalances (`streams.worker.topology.Rebalancer`): `stop_fetching` when partitions are revoked
(before the lanes are held, so nothing more arrives), `release` once the list in hand was
acked, `assign_from` with the new assignment (each position reset to the committed offset).
A partition is fetched only while Faust would take it (`faust_takes`, told by Faust's consumer
when it pauses and resumes partitions): not before its state is recovered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import ConsumerStoppedError, KafkaError

from streams.worker.lanes import BatchLane

log = logging.getLogger("slatestream.worker")
RETRY_S = 1.0
"""Seconds between tries to start the consumer, and after a failed fetch."""


class OffsetKeeper(Protocol):
    """Faust's consumer as this fetcher needs it (streams.worker.faust_private.BatchDrainConsumer)."""

    def ack_offsets(self, tp: Any, offsets: list[int]) -> None: ...

    async def note_gaps(self, tp: Any, previous: int | None, fetched: Sequence[Any]) -> None: ...


class RequestFetcher:
    """Fetches the request partitions assigned to this worker into the request lane.

    Args:
        topic: the requests topic.
        lane: the request lane (not one of the app's Faust-fed lanes).
        keeper: returns Faust's consumer (acks and offset gaps go to it; it commits them).
        make_consumer: builds the AIOKafkaConsumer, in the running event loop (a fresh one after
            each start the broker refused).
    """

    def __init__(self, topic: str, lane: BatchLane, keeper: Callable[[], OffsetKeeper],
                 make_consumer: Callable[[], AIOKafkaConsumer]) -> None:
        self.topic, self.lane, self.keeper, self.make_consumer = topic, lane, keeper, make_consumer
        self.owned: set[TopicPartition] = set()  # the partitions whose records may be ranked and acked
        self.fetched = 0  # records handed to the lane since start
        self._consumer: AIOKafkaConsumer | None = None
        self._wanted: list[TopicPartition] = []  # the assignment to fetch (applied once started)
        self._last: dict[TopicPartition, int] = {}  # offset of the last record handed over, this assignment
        self._generation = 0  # moves at each assignment and revocation: a fetch of an older one is dropped
        self.released: set[TopicPartition] = set()  # partitions Faust would take now (`faust_takes`)
        self._full: set[TopicPartition] = set()  # partitions the lane asked to pause (`on_buffer_full`)

    # -- the rebalance handlers' side -------------------------------------------------------

    def assign_from(self, assigned: Iterable[Any]) -> None:
        """Fetch the request partitions among `assigned` (the group's new assignment: anything
        with topic and partition), each from the group's committed offset."""
        self.owned = {TopicPartition(tp.topic, tp.partition) for tp in assigned if tp.topic == self.topic}
        self._wanted = sorted(self.owned)
        self._last.clear()
        self._full.clear()
        self._generation += 1
        if self._consumer is not None:
            self._consumer.assign(self._wanted)
            self._apply_pauses()

    def faust_takes(self, tps: Iterable[Any], taking: bool) -> None:
        """Faust paused (`taking` False) or resumed request partitions: it pauses every assigned
        partition at each assignment and resumes the streams' once the state is recovered from
        its changelog, so no request is ranked on a partition's state before it is whole (or
        writes to it while the recovery does). They are fetched only while Faust would take them."""
        for tp in tps:
            (self.released.add if taking else self.released.discard)(TopicPartition(tp.topic, tp.partition))
        self._apply_pauses()

    def _apply_pauses(self) -> None:
        """Pause the assigned partitions Faust holds or the lane finds full, resume the others
        (nothing while revoking: `stop_fetching` paused them all)."""
        consumer = self._consumer
        if consumer is None or not self._wanted:
            return
        assigned = consumer.assignment()
        held = [tp for tp in assigned if tp not in self.released or tp in self._full]
        if held:
            consumer.pause(*held)
        running = [tp for tp in assigned if tp in self.released and tp not in self._full]
        if running:
            consumer.resume(*running)

    def stop_fetching(self) -> None:
        """Fetch nothing more (partitions are being revoked): what aiokafka buffered is never
        returned; the partitions stay owned until `release`."""
        self._wanted = []
        self._generation += 1
        if self._consumer is not None and self._consumer.assignment():
            self._consumer.pause(*self._consumer.assignment())

    def release(self) -> None:
        """Own nothing: lists taken from now on skip every chunk, and nothing more is acked."""
        self.owned = set()

    # -- the lane's side (BatchLane's consumer) ---------------------------------------------

    def assignment(self) -> set[TopicPartition]:
        """The partitions owned now."""
        return self.owned

    def ack_offsets(self, tp: Any, offsets: list[int]) -> None:
        """Ranked: Faust's consumer commits these offsets in the group once contiguous."""
        self.keeper().ack_offsets(tp, offsets)

    def on_buffer_full(self, tp: Any) -> None:
        """Too many requests wait in the lane: fetch no more of `tp` until `on_buffer_drop`."""
        self._full.add(TopicPartition(tp.topic, tp.partition))
        self._apply_pauses()

    def on_buffer_drop(self, tp: Any) -> None:
        """Fetch `tp` again (unless Faust holds it, or revocation stopped the fetching)."""
        self._full.discard(TopicPartition(tp.topic, tp.partition))
        self._apply_pauses()

    def forget_paused(self, tp: Any) -> None:
        """Nothing to forget: the next `assign_from` resets every partition's pause."""

    def highwater(self, tp: Any) -> int | None:
        """The partition's end offset as the last fetch saw it (None before one)."""
        if self._consumer is None:
            return None
        end = self._consumer.highwater(TopicPartition(tp.topic, tp.partition))
        return None if end is None else int(end)

    # -- the task ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Start the consumer and hand what it fetches to the lane until cancelled."""
        consumer = await self._started()
        try:
            while True:
                try:
                    fetched = await consumer.getmany(timeout_ms=1_000)
                except ConsumerStoppedError:
                    return
                except KafkaError as error:  # the consumer retries on its own; say so and go on
                    log.warning("request fetcher: %r; fetching again in %.0f s", error, RETRY_S)
                    await asyncio.sleep(RETRY_S)
                    continue
                await self._hand_over(fetched)
        finally:
            await asyncio.shield(consumer.stop())

    async def _started(self) -> AIOKafkaConsumer:
        """A started consumer, assigned what is wanted; a fresh one after each failed start."""
        while True:
            consumer = self._consumer = self.make_consumer()
            if self._wanted:
                consumer.assign(self._wanted)
                self._apply_pauses()
            try:
                await consumer.start()
            except KafkaError as error:
                log.warning("request fetcher could not start (%r); again in %.0f s", error, RETRY_S)
            except asyncio.CancelledError:
                await asyncio.shield(consumer.stop())
                raise
            else:
                log.info("request fetcher started for %s", self.topic)
                return consumer
            await consumer.stop()
            await asyncio.sleep(RETRY_S)

    async def _hand_over(self, fetched: dict[TopicPartition, list[Any]]) -> None:
        """Each owned partition's records to the lane as one chunk, its offset gaps noted first."""
        keeper, generation = self.keeper(), self._generation
        for tp, records in fetched.items():
            if not records or tp not in self.owned or not self._wanted:
                continue  # fetched as the assignment changed: fetched again from the committed offset
            await keeper.note_gaps(tp, self._last.get(tp), records)
            if generation != self._generation:
                return  # a rebalance began during that await: the new owner fetches these again
            self.lane.add(self, tp, records)
            self._last[tp] = int(records[-1].offset)
            self.fetched += len(records)
        self.lane.fetched()


def request_consumer(client_config: dict[str, Any], group_id: str, max_fetch_bytes: int) -> AIOKafkaConsumer:
    """The fetcher's consumer: manually assigned (no group membership, no commits), reading the
    committed offsets of `group_id`, the earliest record where a partition has none (as the
    worker's group). `client_config`: `StreamSettings.aiokafka_client_config()`."""
    return AIOKafkaConsumer(
        group_id=group_id, client_id=f"{group_id}-requests", enable_auto_commit=False,
        auto_offset_reset="earliest", max_partition_fetch_bytes=max_fetch_bytes, **client_config)
