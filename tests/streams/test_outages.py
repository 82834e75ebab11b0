"""streams.outages: a broker outage is one line when it starts and one when it ends, with a count."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from streams.outages import OutageFilter, OutageLog, install, quiet_outages, tcp_reachable
from streams.settings import StreamSettings

# what aiokafka and kafka-python wrote while a broker was stopped (counted from a worker's log)
OUTAGE_RECORDS = [
    ("aiokafka", logging.ERROR, "Unable connect to node with id 1: [Errno 111] Connect call failed ('127.0.0.1', 9)"),
    ("aiokafka", logging.ERROR, "Unable to update metadata from [1]"),
    ("aiokafka.consumer.fetcher", logging.ERROR, "Failed fetch messages from 1: NodeNotReadyError: Attempt to send a "
                                                 "request to node which is not ready (node id 1)."),
    ("aiokafka.consumer.group_coordinator", logging.ERROR, "Group Coordinator Request failed: NodeNotReadyError: "
                                                           "Attempt to send a request to node which is not ready"),
    ("kafka.cluster", logging.WARNING, "Metadata refresh: failed KafkaConnectionError: 111 ECONNREFUSED"),
    ("kafka.net.manager", logging.ERROR, "Connection failed: KafkaConnectionError: 111 ECONNREFUSED"),
    ("kafka.net.connection", logging.ERROR, "<KafkaConnection node_id=1 (disconnected)>: Connection lost: "
                                            "KafkaConnectionError: socket disconnected"),
    ("aiokafka.consumer.group_coordinator", logging.ERROR, "Heartbeat session expired - marking coordinator dead"),
    ("aiokafka.consumer.group_coordinator", logging.WARNING, "Heartbeat failed for group g: coordinator (node 1) is "
                                                             "either not started or not valid"),
]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def record(name: str, level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, None, None)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def reachable() -> list[bool]:
    return [False]


@pytest.fixture
def outages(clock: Clock, reachable: list[bool]) -> OutageLog:
    return OutageLog(lambda: reachable[0], settle_s=2.0, remind_s=60.0, clock=clock,
                     wall=lambda: datetime(2026, 12, 5, 9, 27, 9, tzinfo=UTC))


def summary(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "slatestream.broker"]


def test_an_outage_is_one_line_then_a_count_then_one_line(outages: OutageLog, clock: Clock, reachable: list[bool],
                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    passed = []
    for n in range(1_500):  # ~125 a second for 12 s
        clock.now += 0.008
        name, level, message = OUTAGE_RECORDS[n % len(OUTAGE_RECORDS)]
        passed.append(not outages.suppress(record(name, level, message)))
        if n % 125 == 0:
            outages.check()  # the watcher probes every second: unreachable
    assert not any(passed)
    assert summary(caplog) == ["broker unreachable since 09:27:09Z (first error: Unable connect to node with id 1: "
                               "[Errno 111] Connect call failed ('127.0.0.1', 9)); connection errors are counted "
                               "until it is back"]

    reachable[0] = True
    outages.check()  # reachable, but the last error came just now: not yet
    clock.now += 2.0
    outages.check()
    assert summary(caplog)[1:] == ["broker reachable again after 14.0 s (unreachable since 09:27:09Z), 1,500 "
                                   "connection errors suppressed"]
    assert not outages.open and outages.outages == 1


def test_a_long_outage_reminds_once_a_minute_with_the_count(outages: OutageLog, clock: Clock,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    for _ in range(130):
        clock.now += 1.0
        outages.suppress(record(*OUTAGE_RECORDS[0]))
        outages.check()
    reminders = [line for line in summary(caplog) if ", for " in line]
    assert reminders == ["broker unreachable since 09:27:09Z, for 60 s (61 connection errors)",
                         "broker unreachable since 09:27:09Z, for 120 s (121 connection errors)"]


def test_a_probe_that_succeeds_while_errors_go_on_does_not_end_it(outages: OutageLog, clock: Clock,
                                                                  reachable: list[bool]) -> None:
    reachable[0] = True  # the port accepts TCP, the clients still fail (a broker starting up)
    for _ in range(10):
        clock.now += 1.0
        outages.suppress(record(*OUTAGE_RECORDS[1]))
        outages.check()
    assert outages.open
    clock.now += 2.0
    outages.check()
    assert not outages.open


def test_a_second_outage_opens_again(outages: OutageLog, clock: Clock, reachable: list[bool],
                                     caplog: pytest.LogCaptureFixture) -> None:
    for _ in range(2):
        reachable[0] = False
        outages.suppress(record(*OUTAGE_RECORDS[0]))
        reachable[0] = True
        clock.now += 5.0
        outages.check()
    lines = summary(caplog)
    assert outages.outages == 2 and len(lines) == 4
    assert lines[1].endswith("1 connection errors suppressed") and lines[3].endswith("1 connection errors suppressed")


@pytest.mark.parametrize("message", [
    "Connection failed: SaslAuthenticationFailedError: Authentication failed: Invalid username or password",
    "Unable connect to node with id 1: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed",
    "Topic t not found in cluster metadata",
    "Failed fetch messages from 1: [Error 29] TopicAuthorizationFailedError",
])
def test_security_and_other_errors_are_always_written(outages: OutageLog, message: str) -> None:
    assert not outages.suppress(record("kafka.net.manager", logging.ERROR, message))
    assert not outages.open


@pytest.mark.parametrize("noise", [
    record("kafka.net.manager", logging.INFO, "Initializing connection for node_id 1 at 127.0.0.1:9"),
    record("kafka.cluster", logging.WARNING, "No node available for metadata refresh - backoff/retry"),
    record("kafka.net.manager", logging.WARNING, "Bootstrap bootstrap-0 not ready; waiting 1.68 secs"),
    record("aiokafka.consumer.group_coordinator", logging.ERROR, "OffsetCommit failed for group g due to group "
           "error ([Error 25] UnknownMemberIdError: g), will rejoin"),
    record("aiokafka.consumer.group_coordinator", logging.WARNING,
           "Heartbeat failed: local member_id was not recognized; resetting and re-joining group"),
])
def test_connection_attempts_and_waits_are_dropped_only_during_an_outage(outages: OutageLog,
                                                                         noise: logging.LogRecord) -> None:
    assert not outages.suppress(noise)
    assert not outages.open  # alone, no outage: kafka-python says "No node available" now and then
    outages.suppress(record(*OUTAGE_RECORDS[0]))
    assert outages.suppress(noise)
    assert not outages.suppress(record("kafka.net.manager", logging.INFO, "Updated metadata: ClusterMetadata(...)"))


@pytest.fixture
def clean_filters() -> Iterator[None]:
    yield
    for logger in logging.Logger.manager.loggerDict.values():
        for old in [f for f in getattr(logger, "filters", []) if isinstance(f, OutageFilter)]:
            logger.removeFilter(old)


def test_install_puts_one_filter_on_the_client_loggers(outages: OutageLog, clean_filters: None,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    logging.getLogger("aiokafka.made.later")  # a logger that exists before install
    install(outages)
    install(outages)  # idempotent: one filter per logger
    for name in ("aiokafka", "kafka.net.manager", "aiokafka.made.later"):
        assert sum(isinstance(f, OutageFilter) for f in logging.getLogger(name).filters) == 1
    caplog.set_level(logging.INFO)
    for _ in range(50):
        logging.getLogger("aiokafka").error("Unable to update metadata from [1]")
        logging.getLogger("kafka.net.manager").error("Connection failed: KafkaConnectionError: 111 ECONNREFUSED")
    logging.getLogger("slatestream.worker").error("Connection failed: not a Kafka client's line")
    written = [(r.name, r.getMessage()[:25]) for r in caplog.records]
    assert written == [("slatestream.broker", "broker unreachable since "),
                       ("slatestream.worker", "Connection failed: not a ")]


def test_tcp_reachable_and_quiet_outages_probe_the_bootstrap_servers(clean_filters: None) -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        assert tcp_reachable([f"127.0.0.1:{port}"])
        outages = quiet_outages(StreamSettings(broker_url=f"kafka://127.0.0.1:{port}"), interval_s=0.05)
        assert outages.probe()
    assert not tcp_reachable([f"127.0.0.1:{port}"], timeout_s=0.5)
