"""The service-side client: publish events, wait for the slate answering a request.

    with SlatestreamClient(StreamSettings()) as client:
        slate = client.request_slate(RankRequest(request_id="r1", user_id="u1"), timeout_s=2)
        client.publish(impression_for(slate, shown=5))   # propensities copied from the slate
        client.publish(click_for(slate, slate.items[0].item_id))

Events go to their topic (see streams.topics) keyed by user id (items: item id) as the
bytes of `online.events.encode_event`. Slates are read by ONE consumer per client,
created the first time a RankRequest is published (or a slate awaited): it is assigned
every partition of the slates topic at its end offsets (no consumer group, so no
rebalance wait), and a background thread polls it, keeping only slates whose request id
a caller registered. Publishing a RankRequest registers its id before the request is
sent, so a slate that arrives before `await_slate` is called is not lost; any number of
threads may await at once on the shared consumer.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.producer.future import FutureRecordMetadata

from online.events import (
    Click,
    EventDecodeError,
    Impression,
    Item,
    RankRequest,
    ShownItem,
    Slate,
    SlateError,
    decode_slate_answer,
    encode_event,
    utc_now,
)
from streams.settings import StreamSettings
from streams.topics import TopicNames

log = logging.getLogger(__name__)

PublishableEvent = RankRequest | Impression | Click | Item


class SlateRequestError(RuntimeError):
    """The worker answered a rank request with an error instead of a slate (an undeclared
    scenario, no candidate in the catalog, filters that leave nothing...): `error` says why."""

    def __init__(self, error: SlateError) -> None:
        super().__init__(f"request {error.request_id!r} cannot be served: {error.error_type}: {error.reason}")
        self.error = error


def event_key(event: PublishableEvent | Slate) -> bytes:
    """The record key: the user id (an Item: its item id), UTF-8."""
    if isinstance(event, Item):
        return event.item_id.encode()
    return event.user_id.encode()


class _SlateWatcher:
    """One consumer over all slates partitions, a polling thread, and a mailbox per request id.

    Args:
        max_pending: request ids remembered at once; beyond that the oldest are dropped
            (a caller that publishes requests and never awaits them cannot grow memory).
    """

    def __init__(
        self, settings: StreamSettings, topic: str, consumer_config: Mapping[str, Any], max_pending: int
    ) -> None:
        self.topic = topic
        self.max_pending = max_pending
        options: dict[str, Any] = {
            "client_id": f"{settings.app_id}-slates",
            "isolation_level": "read_committed",  # never serve a slate from an aborted transaction
            "fetch_max_wait_ms": 100,
        }
        options.update(consumer_config)
        options.update(group_id=None, enable_auto_commit=False)
        self._consumer = KafkaConsumer(**settings.kafka_client_config(), **options)
        try:
            partitions = self._consumer.partitions_for_topic(topic)
            if not partitions:
                raise RuntimeError(f"topic {topic} does not exist: run streams.topics.ensure_topics first")
            assigned = [TopicPartition(topic, partition) for partition in sorted(partitions)]
            self._consumer.assign(assigned)
            for partition, end in self._consumer.end_offsets(assigned).items():
                self._consumer.seek(partition, end)
        except BaseException:
            self._consumer.close()
            raise
        self._cond = threading.Condition()
        self._pending: OrderedDict[str, Slate | SlateError | None] = OrderedDict()
        self._failure: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"slatestream-slates-{topic}", daemon=True)
        self._thread.start()

    def register(self, request_id: str) -> None:
        """Start keeping the slate for `request_id` (no-op when already registered)."""
        with self._cond:
            if request_id not in self._pending:
                self._pending[request_id] = None
                while len(self._pending) > self.max_pending:
                    dropped, _ = self._pending.popitem(last=False)
                    log.warning("slate watcher full: forgetting request %s", dropped)

    def wait(self, request_id: str, timeout_s: float) -> Slate:
        """Block until the slate for `request_id` arrives; SlateRequestError when the worker
        answered that it cannot serve the request, TimeoutError after timeout_s."""
        deadline = time.monotonic() + timeout_s
        self.register(request_id)
        with self._cond:
            try:
                while True:
                    slate = self._pending.get(request_id)
                    if isinstance(slate, SlateError):
                        raise SlateRequestError(slate)
                    if slate is not None:
                        return slate
                    if self._failure is not None:
                        raise RuntimeError(f"the slate consumer failed: {self._failure!r}") from self._failure
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError(
                            f"no slate for request {request_id!r} on {self.topic} within {timeout_s:g} s"
                        )
                    self._cond.wait(remaining)
            finally:
                self._pending.pop(request_id, None)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10.0)
        self._consumer.close(autocommit=False)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                batches = self._consumer.poll(timeout_ms=100)
                for records in batches.values():
                    for record in records:
                        self._offer(record.value, record.partition, record.offset)
        except BaseException as error:  # surfaced to every waiter, then the thread ends
            log.exception("slate consumer failed")
            with self._cond:
                self._failure = error
                self._cond.notify_all()

    def _offer(self, raw: bytes | None, partition: int, offset: int) -> None:
        if raw is None:
            return
        try:
            request_id = json.loads(raw).get("request_id")
        except (ValueError, AttributeError):
            request_id = None
        if not isinstance(request_id, str):
            log.debug("skipping record without request_id %s[%d]@%d", self.topic, partition, offset)
            return
        with self._cond:
            if request_id not in self._pending or self._pending[request_id] is not None:
                return  # not ours, or a duplicate: the first slate for a request wins
        try:
            event = decode_slate_answer(raw)
        except EventDecodeError as error:
            log.warning("skipping bad slate %s[%d]@%d: %s", self.topic, partition, offset, error)
            return
        with self._cond:
            if event.request_id in self._pending and self._pending[event.request_id] is None:
                self._pending[event.request_id] = event
                self._cond.notify_all()


class SlatestreamClient:
    """Publishes RankRequest / Impression / Click / Item events and awaits slates.

    Thread-safe. Args:
        settings: broker, security and topic prefix; default `StreamSettings()` (env).
        producer_config: extra kafka-python KafkaProducer options (e.g. {"linger_ms": 5}).
        consumer_config: extra KafkaConsumer options for the slate consumer.
        max_pending: request ids the slate consumer remembers at once.
    """

    def __init__(
        self,
        settings: StreamSettings | None = None,
        *,
        producer_config: Mapping[str, Any] | None = None,
        consumer_config: Mapping[str, Any] | None = None,
        max_pending: int = 100_000,
    ) -> None:
        self.settings = settings or StreamSettings()
        self.topics = TopicNames.from_settings(self.settings)
        self._consumer_config = dict(consumer_config or {})
        self._max_pending = max_pending
        options: dict[str, Any] = {"acks": "all", "client_id": f"{self.settings.app_id}-client"}
        options.update(producer_config or {})
        self._producer = KafkaProducer(**self.settings.kafka_client_config(), **options)
        self._watcher: _SlateWatcher | None = None
        self._lock = threading.Lock()
        self._closed = False

    def watch_slates(self) -> None:
        """Start the slate consumer now (otherwise: on the first RankRequest or await)."""
        self._slates()

    def publish(self, event: PublishableEvent) -> FutureRecordMetadata:
        """Send one event to its topic, keyed by user id (Item: item id); asynchronous.

        A RankRequest first registers its request id with the slate consumer, so the
        answer is caught even if it arrives before `await_slate` is called. Returns
        kafka-python's future (`.get(timeout)` gives the RecordMetadata). Slates are the
        worker's output and are refused with TypeError.
        """
        if self._closed:
            raise RuntimeError("publish on a closed SlatestreamClient")
        if not isinstance(event, RankRequest | Impression | Click | Item):
            raise TypeError(f"cannot publish {type(event).__name__}: only RankRequest, Impression, Click, Item")
        if isinstance(event, RankRequest):
            self._slates().register(event.request_id)
        topic = self.topics.for_event_type(event.type)
        future: FutureRecordMetadata = self._producer.send(topic, value=encode_event(event), key=event_key(event))
        return future

    def flush(self, timeout_s: float | None = None) -> None:
        """Block until every published event is acknowledged by the broker."""
        self._producer.flush(timeout=timeout_s)

    def await_slate(self, request_id: str, timeout_s: float = 5.0) -> Slate:
        """The slate answering `request_id`; TimeoutError naming the id after timeout_s.

        Only slates that arrive after the request id was registered are seen: publish the
        RankRequest through this client (or call `watch_slates()` / `await_slate` before
        the request can be answered). Each slate is returned once.
        """
        return self._slates().wait(request_id, timeout_s)

    def request_slate(self, request: RankRequest, timeout_s: float = 5.0) -> Slate:
        """Publish `request`, flush, and wait for its slate (TimeoutError after timeout_s)."""
        self.publish(request)
        self.flush(timeout_s)
        return self.await_slate(request.request_id, timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush and close the producer, stop the slate consumer. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            watcher, self._watcher = self._watcher, None
        try:
            self._producer.close(timeout=timeout_s)
        finally:
            if watcher is not None:
                watcher.close()

    def __enter__(self) -> SlatestreamClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def _slates(self) -> _SlateWatcher:
        with self._lock:
            if self._closed:
                raise RuntimeError("SlatestreamClient is closed")
            if self._watcher is None:
                self._watcher = _SlateWatcher(
                    self.settings, self.topics.slates, self._consumer_config, self._max_pending
                )
            return self._watcher


def impression_for(
    slate: Slate,
    *,
    shown: int | Iterable[str] | None = None,
    event_id: str | None = None,
    time: datetime | None = None,
) -> Impression:
    """The Impression of a slate as it was shown: each shown item with the position and the
    propensity the slate gave it, so offline evaluation can weight the logged decision.

    Args:
        slate: the slate the worker answered with.
        shown: what the user saw: None for the whole slate, an int n for its top n items, or
            the ids of the shown items (each must be in the slate; order does not matter, each
            keeps its slate position).
        event_id: the impression's id (default "imp-<request id>", so publishing the same
            impression twice is one event to a deduplicating reader).
        time: when it was shown (default: now, UTC).

    Raises ValueError when `shown` names an item the slate does not hold, repeats one, or
    selects nothing. Showing an item at another position than the slate's would make its
    propensity wrong: build that impression by hand, without propensities.
    """
    by_id = {item.item_id: item for item in slate.items}
    if shown is None:
        chosen = sorted(slate.items, key=lambda item: item.position)
    elif isinstance(shown, int):
        if not 1 <= shown <= len(slate.items):
            raise ValueError(f"shown: {shown} items of a slate of {len(slate.items)}")
        chosen = sorted(slate.items, key=lambda item: item.position)[:shown]
    else:
        ids = [shown] if isinstance(shown, str) else list(shown)
        missing = [item_id for item_id in ids if item_id not in by_id]
        if missing:
            raise ValueError(f"shown: {missing[:5]} not in the slate for request {slate.request_id!r}")
        if len(set(ids)) != len(ids):
            raise ValueError("shown: an item id is repeated")
        chosen = sorted((by_id[item_id] for item_id in ids), key=lambda item: item.position)
    if not chosen:
        raise ValueError("shown: no item selected")
    return Impression(
        event_id=event_id or f"imp-{slate.request_id}",
        request_id=slate.request_id,
        user_id=slate.user_id,
        scenario=slate.scenario,
        shown=tuple(ShownItem(item_id=item.item_id, position=item.position, propensity=item.propensity)
                    for item in chosen),
        time=time or utc_now(),
    )


def click_for(
    slate: Slate,
    item_id: str,
    *,
    event_id: str | None = None,
    reward: float = 1.0,
    reward_kind: str = "click",
    time: datetime | None = None,
) -> Click:
    """The Click on `item_id` of `slate` (request, user and scenario copied from the slate).

    `event_id` defaults to "click-<request id>-<item id>". ValueError when the slate does not
    hold the item (a click on something the slate never offered is not feedback on it).
    """
    if item_id not in {item.item_id for item in slate.items}:
        raise ValueError(f"item_id: {item_id!r} is not in the slate for request {slate.request_id!r}")
    return Click(
        event_id=event_id or f"click-{slate.request_id}-{item_id}",
        request_id=slate.request_id,
        user_id=slate.user_id,
        item_id=item_id,
        scenario=slate.scenario,
        reward=reward,
        reward_kind=reward_kind,
        time=time or utc_now(),
    )
