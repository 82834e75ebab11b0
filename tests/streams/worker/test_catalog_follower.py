"""The catalog follower through a broker outage, without a broker: a fake consumer that fails
the way kafka-python does while the broker is down."""

import logging
from collections.abc import Callable

import pytest
from kafka.errors import KafkaConnectionError

from streams.worker.catalog import CatalogFollower

from .test_core import core
from .test_topology import Message, catalog_of_another_worker


class OutageConsumer:
    """A catalog consumer whose broker goes away: poll fails twice, then position fails once
    right after a poll that returned records, then everything works."""

    def __init__(self, records: list[Message]) -> None:
        self.script = ["fail", "fail", "records-then-fail", "records"]
        self.records = records

    def poll(self, timeout_ms: int, max_records: int) -> dict[int, list[Message]]:
        step = self.script.pop(0) if self.script else "empty"
        self.step = step
        if step == "fail":
            raise KafkaConnectionError("111 ECONNREFUSED")
        if step.startswith("records"):
            cut = len(self.records) // 2 if step == "records-then-fail" else len(self.records)
            batch, self.records = self.records[:cut], self.records[cut:]
            return {0: batch}
        return {}

    def position(self, tp: object) -> int:
        if self.step == "records-then-fail":
            raise KafkaConnectionError("111 ECONNREFUSED")
        return 99

    def assignment(self) -> set[str]:
        return {"tp"}


class InlineLoop:
    """Runs what the follower hands to the event loop at once; closes after `turns` polls."""

    def __init__(self, turns: int) -> None:
        self.turns = turns

    def is_closed(self) -> bool:
        self.turns -= 1
        return self.turns < 0

    def call_soon_threadsafe(self, function: Callable[..., object], *args: object) -> None:
        function(*args)


def test_the_catalog_follower_rides_out_a_broker_outage_without_dropping_records(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    worker, records = core({}), catalog_of_another_worker()
    follower = CatalogFollower(worker, "t.catalog")
    consumer = OutageConsumer(records)
    monkeypatch.setattr(follower, "_open", lambda *args: consumer)
    monkeypatch.setattr("streams.worker.catalog.RETRY_S", 0.0)
    follower._follow(None, InlineLoop(turns=6), 100)  # type: ignore[arg-type]
    assert len(worker.catalog) == len(records)  # the batch polled before position() failed is kept too
    warnings = [r.getMessage() for r in caplog.records if "catalog follower" in r.getMessage()]
    assert len(warnings) == 2 and "retrying" in warnings[0] and "again after" in warnings[1], warnings
