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

Connecting never blocks a call past its timeout: the producer and the slate consumer are
made on a thread of their own (the producer from construction on, streams.connecting), each
after the broker check of streams.preflight, so a wrong password or an unreachable broker is
named within seconds (`BrokerCheckError`), and `request_slate(timeout_s=2)` raises within 2 s
while the broker cannot be reached (kafka-python's own bootstrap would take 30 s).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaTimeoutError
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
from streams.connecting import Connecting
from streams.preflight import check_broker
from streams.settings import StreamSettings
from streams.topics import TopicNames

log = logging.getLogger(__name__)
T = TypeVar("T")
DEFAULT_CONNECT_TIMEOUT_S = 30.0
"""How long `publish` waits for the producer's first connection (kafka-python's bootstrap timeout)."""

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
        check: run the broker check (streams.preflight) in the constructor, so that a broker
            that cannot be used fails it within `settings.preflight_timeout_s` with the
            `BrokerCheckError` that names why. Without it the constructor never blocks and the
            first call that needs the broker raises that error instead.
        connect_timeout_s: how long `publish`, `flush` and `await_slate` wait for a first
            connection (`request_slate` waits no longer than its own timeout).
    """

    def __init__(
        self,
        settings: StreamSettings | None = None,
        *,
        producer_config: Mapping[str, Any] | None = None,
        consumer_config: Mapping[str, Any] | None = None,
        max_pending: int = 100_000,
        check: bool = False,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    ) -> None:
        self.settings = settings or StreamSettings()
        self.topics = TopicNames.from_settings(self.settings)
        self.connect_timeout_s = connect_timeout_s
        if check:
            check_broker(self.settings, self.topics.all())
        self._consumer_config = dict(consumer_config or {})
        self._max_pending = max_pending
        options: dict[str, Any] = {"acks": "all", "client_id": f"{self.settings.app_id}-client"}
        options.update(producer_config or {})
        self._producers = Connecting(lambda: self._checked(lambda: KafkaProducer(
            **self.settings.kafka_client_config(), **options)), "producer", self.settings.broker_url)
        self._watchers = Connecting(lambda: self._checked(lambda: _SlateWatcher(
            self.settings, self.topics.slates, self._consumer_config, self._max_pending)), "slate consumer",
            self.settings.broker_url)
        self._lock = threading.Lock()
        self._closed = False
        self._producers.start()

    def _checked(self, make: Callable[[], T]) -> T:
        """`make()` after the broker check, so that what cannot work fails in seconds, named."""
        check_broker(self.settings, self.topics.all())
        return make()

    @property
    def _producer(self) -> KafkaProducer:
        """The connected producer (waits up to connect_timeout_s)."""
        return self._connected_producer(time.monotonic() + self.connect_timeout_s)

    def _connected_producer(self, deadline: float) -> KafkaProducer:
        if self._closed:
            raise RuntimeError("publish on a closed SlatestreamClient")
        return self._producers.get(deadline - time.monotonic())

    def watch_slates(self) -> None:
        """Start the slate consumer now (otherwise: on the first RankRequest or await) and wait
        until it is connected (up to connect_timeout_s)."""
        self._slates(time.monotonic() + self.connect_timeout_s)

    def publish(self, event: PublishableEvent) -> FutureRecordMetadata:
        """Send one event to its topic, keyed by user id (Item: item id); asynchronous once
        connected (the first call waits up to connect_timeout_s for the connection).

        A RankRequest first registers its request id with the slate consumer, so the
        answer is caught even if it arrives before `await_slate` is called. Returns
        kafka-python's future (`.get(timeout)` gives the RecordMetadata). Slates are the
        worker's output and are refused with TypeError.
        """
        return self._publish(event, time.monotonic() + self.connect_timeout_s)

    def _publish(self, event: PublishableEvent, deadline: float) -> FutureRecordMetadata:
        if self._closed:
            raise RuntimeError("publish on a closed SlatestreamClient")
        if not isinstance(event, RankRequest | Impression | Click | Item):
            raise TypeError(f"cannot publish {type(event).__name__}: only RankRequest, Impression, Click, Item")
        producer = self._connected_producer(deadline)
        if isinstance(event, RankRequest):
            self._slates(deadline).register(event.request_id)
        topic = self.topics.for_event_type(event.type)
        future: FutureRecordMetadata = producer.send(topic, value=encode_event(event), key=event_key(event))
        return future

    def flush(self, timeout_s: float | None = None) -> None:
        """Block until every published event is acknowledged by the broker; TimeoutError after
        timeout_s (None: as long as it takes)."""
        if timeout_s is None:
            self._producer.flush()
            return
        deadline = time.monotonic() + timeout_s
        try:
            self._connected_producer(deadline).flush(timeout=max(deadline - time.monotonic(), 0.0))
        except KafkaTimeoutError:
            raise TimeoutError(f"published events not acknowledged by the broker within {timeout_s:g} s") from None

    def await_slate(self, request_id: str, timeout_s: float = 5.0) -> Slate:
        """The slate answering `request_id`; TimeoutError naming the id after timeout_s.

        Only slates that arrive after the request id was registered are seen: publish the
        RankRequest through this client (or call `watch_slates()` / `await_slate` before
        the request can be answered). Each slate is returned once.
        """
        deadline = time.monotonic() + timeout_s
        return self._slates(deadline).wait(request_id, max(deadline - time.monotonic(), 0.0))

    def request_slate(self, request: RankRequest, timeout_s: float = 5.0) -> Slate:
        """Publish `request`, flush, and wait for its slate: TimeoutError after timeout_s in all,
        connecting included (a broker that cannot be used: its BrokerCheckError, if named sooner)."""
        deadline = time.monotonic() + timeout_s
        self._publish(request, deadline)
        self.flush(max(deadline - time.monotonic(), 0.0))
        return self._slates(deadline).wait(request.request_id, max(deadline - time.monotonic(), 0.0))

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush and close the producer, stop the slate consumer (or close them once a pending
        connection completes). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._producers.close(lambda producer: producer.close(timeout=timeout_s))
        finally:
            self._watchers.close(lambda watcher: watcher.close())

    def __enter__(self) -> SlatestreamClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def _slates(self, deadline: float) -> _SlateWatcher:
        if self._closed:
            raise RuntimeError("SlatestreamClient is closed")
        return self._watchers.get(deadline - time.monotonic())


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
