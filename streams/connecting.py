"""Connecting without blocking a caller past its deadline: `Connecting` makes a kafka-python
client (whose constructor connects, for up to 30 s) on a thread of its own, once, and lets each
caller wait for it up to the caller's own deadline; a failed attempt is retried by the next
caller. Used by streams.client.SlatestreamClient for its producer and its slate consumer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Generic, TypeVar

T = TypeVar("T")


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
