"""The client's two connections: the slate consumer (`SlateWatcher`) and connecting without
blocking a caller past its deadline (`Connecting`). Used by streams.client.SlatestreamClient.

`SlateWatcher` is one consumer over every slates partition (no consumer group), a polling
thread, and a mailbox per request id a caller registered. `Connecting` makes a kafka-python
client (whose constructor connects, for up to 30 s) on a thread of its own, once, and lets each
caller wait for it up to the caller's own deadline.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Generic, TypeVar

from kafka import KafkaConsumer, TopicPartition

from online.events import EventDecodeError, Slate, decode_event
from streams.settings import StreamSettings

log = logging.getLogger("streams.client")
T = TypeVar("T")


class SlateWatcher:
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
        self._pending: OrderedDict[str, Slate | None] = OrderedDict()
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
        """Block until the slate for `request_id` arrives; TimeoutError after timeout_s."""
        deadline = time.monotonic() + timeout_s
        self.register(request_id)
        with self._cond:
            try:
                while True:
                    slate = self._pending.get(request_id)
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
            event = decode_event(raw)
        except EventDecodeError as error:
            log.warning("skipping bad slate %s[%d]@%d: %s", self.topic, partition, offset, error)
            return
        if not isinstance(event, Slate):
            return
        with self._cond:
            if event.request_id in self._pending and self._pending[event.request_id] is None:
                self._pending[event.request_id] = event
                self._cond.notify_all()



class Connecting(Generic[T]):
    """A Kafka client made on a thread of its own (its constructor connects), once; callers wait
    for it up to their own deadline. A failed attempt is retried by the next caller.

    Args:
        make: builds the client (blocking; raises what connecting raised).
        what: what it is, for messages ("producer", "slate consumer").
        broker_url: where it connects, for messages.
    """

    def __init__(self, make: Callable[[], T], what: str, broker_url: str) -> None:
        self.make, self.what, self.broker_url = make, what, broker_url
        self._lock = threading.Lock()
        self._future: Future[T] | None = None
        self._closed = False

    def start(self) -> Future[T]:
        """The attempt under way or done, or a new one when there is none or the last failed."""
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the {self.what} is closed")
            future = self._future
            if future is None or (future.done() and future.exception() is not None):
                future = self._future = Future()
                threading.Thread(target=self._run, args=(future,), name=f"slatestream-connect-{self.what}",
                                 daemon=True).start()
            return future

    def get(self, timeout_s: float) -> T:
        """The connected client; what connecting raised (a BrokerCheckError names the cause), or
        TimeoutError when it is not connected within timeout_s (it keeps trying meanwhile)."""
        try:
            return self.start().result(timeout=max(timeout_s, 0.0))
        except FutureTimeout:
            raise TimeoutError(f"the {self.what} could not connect to the broker at {self.broker_url} within "
                               f"{timeout_s:g} s (still trying; check SLATESTREAM_BROKER_URL and that the broker "
                               "runs)") from None

    def close(self, close: Callable[[T], None]) -> None:
        """Close the client now if it is connected, else as soon as a pending attempt connects."""
        with self._lock:
            self._closed, future = True, self._future
        if future is not None:
            future.add_done_callback(lambda done: close(done.result()) if done.exception() is None else None)

    def _run(self, future: Future[T]) -> None:
        try:
            made = self.make()
        except BaseException as error:  # handed to whoever waits
            future.set_exception(error)
            return
        future.set_result(made)
