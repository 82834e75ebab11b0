"""Broker outages in the log: one line when the broker becomes unreachable, one when it is back.

aiokafka and kafka-python log every failed connection, fetch, metadata refresh and heartbeat, at
ERROR: a worker wrote ~1,600 lines during a 20 s broker stop (measured, docs/reliability.md).
`quiet_outages(settings)` puts an `OutageFilter` on their loggers. The first connection error
opens an outage and is replaced by one line,

    broker unreachable since 09:27:09Z (first error: Unable connect to node with id 1: ...)

the next ones are counted, not written (a reminder with the count every 60 s while it lasts),
and once the broker accepts a TCP connection again and no connection error came for 2 s, one
line closes it:

    broker reachable again after 28.4 s (unreachable since 09:27:09Z), 1,599 connection errors suppressed

Other records pass unchanged; authentication, authorisation and TLS errors always do.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from streams.settings import StreamSettings

log = logging.getLogger("slatestream.broker")

CONNECTION_ERROR = re.compile("|".join((
    r"connect call failed", r"connection refused", r"econnrefused", r"unable connect to", r"unable to connect",
    r"unable to update metadata", r"nodenotready", r"node which is not ready",
    r"kafkaconnectionerror", r"connection (at \S+ )?(closed|broken|lost|failed|reset)", r"socket disconnected",
    r"unable to bootstrap", r"bootstrap connection to", r"coordinator dead",
    r"is either not started or not valid", r"heartbeat session expired", r"requesttimedout",
    r"request timed out", r"no route to host", r"network is unreachable", r"name or service not known",
    r"temporary failure in name resolution", r"broken pipe", r"metadata refresh: failed", r": abort \(",
)), re.IGNORECASE)
"""What aiokafka, kafka-python and Faust say when a broker cannot be reached (matched anywhere
in the formatted message)."""
OUTAGE_NOISE = re.compile(r"initializing connection|attempting (bootstrap|to connect)|no node available|"
                          r"not ready; waiting|unknownmemberid|will rejoin|re-joining group|"
                          r"member_id was not recognized", re.IGNORECASE)
"""Connection attempts and waits, and the group's rejoin when a restarted broker forgot this
member (aiokafka writes "OffsetCommit failed ... UnknownMemberIdError ..., will rejoin" once per
pending commit: 10 lines in 2 ms after one kill -9): dropped while an outage lasts (counted when
at WARNING or above), written otherwise: alone they are no outage (kafka-python warns "No node
available for metadata refresh" now and then while every broker is up; a rebalance of a healthy
group is worth its lines)."""
NEVER_QUIET = re.compile(r"authenticat|authoriz|sasl|ssl|certificate|tls", re.IGNORECASE)
"""Security failures are not outages: always written."""
WATCHED = ("aiokafka", "aiokafka.conn", "aiokafka.consumer.fetcher", "aiokafka.consumer.group_coordinator",
           "aiokafka.producer.sender", "aiokafka.producer.producer", "kafka.net.manager", "kafka.net.connection",
           "kafka.net.transport", "kafka.cluster", "kafka.coordinator.base", "kafka.consumer.fetcher",
           "kafka.producer.sender", "kafka.admin.client", "faust.transport.drivers.aiokafka")
"""Loggers the filter goes on (with every logger already made under aiokafka, kafka and
faust.transport): a filter on a logger sees only the records logged on that very logger."""
WATCHED_PREFIXES = ("aiokafka", "kafka.", "faust.transport")


def tcp_reachable(servers: Sequence[str], timeout_s: float = 1.0) -> bool:
    """Whether any "host:port" of `servers` accepts a TCP connection within timeout_s."""
    for server in servers:
        host, _, port = server.rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
        except OSError:
            continue
        return True
    return False


def _clock_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%H:%M:%SZ")


class OutageLog:
    """One process's view of the broker, fed by log records (`suppress`) and probes (`check`).

    Args:
        probe: () -> whether the broker accepts a TCP connection now.
        settle_s: seconds without a connection error (and a successful probe) that end an outage.
        remind_s: while an outage lasts, a line with its count every remind_s seconds.
        clock: monotonic seconds; wall: the current UTC time (for "since").
    """

    def __init__(self, probe: Callable[[], bool], settle_s: float = 2.0, remind_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.probe, self.settle_s, self.remind_s = probe, settle_s, remind_s
        self.clock, self.wall = clock, wall
        self.outages = 0
        """Outages opened so far."""
        self._lock = threading.Lock()
        self._opened_at: float | None = None
        self._since = ""
        self._errors = 0
        self._last_error = self._last_reminder = 0.0

    @property
    def open(self) -> bool:
        """Whether an outage lasts now."""
        return self._opened_at is not None

    def suppress(self, record: logging.LogRecord) -> bool:
        """Whether `record` is to be dropped: a connection error (counted; the first one opens an
        outage and writes its line instead) or, during an outage, a connection attempt or wait."""
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot format itself is not ours to judge
            return False
        if NEVER_QUIET.search(message):
            return False
        if record.levelno < logging.WARNING or not CONNECTION_ERROR.search(message):
            if not (self.open and OUTAGE_NOISE.search(message)):
                return False
            if record.levelno >= logging.WARNING:
                with self._lock:
                    self._errors += 1
            return True
        with self._lock:
            now = self.clock()
            self._last_error = now
            self._errors += 1
            opening = self._opened_at is None
            if opening:
                self._opened_at, self._last_reminder, self._errors = now, now, 1
                self._since = _clock_text(self.wall())
                self.outages += 1
        if opening:
            log.error("broker unreachable since %s (first error: %s); connection errors are counted until it is "
                      "back", self._since, message[:300])
        return True

    def check(self) -> None:
        """While an outage lasts: end it when the broker accepts connections and no connection
        error came for settle_s seconds, else write a reminder every remind_s seconds."""
        if self._opened_at is None:
            return
        reachable = self.probe()
        with self._lock:
            if self._opened_at is None:
                return
            now = self.clock()
            lasted, errors, since = now - self._opened_at, self._errors, self._since
            closing = reachable and now - self._last_error >= self.settle_s
            reminding = not closing and now - self._last_reminder >= self.remind_s
            if closing:
                self._opened_at = None
            if reminding:
                self._last_reminder = now
        if closing:
            log.warning("broker reachable again after %.1f s (unreachable since %s), %s connection errors suppressed",
                        lasted, since, f"{errors:,}")
        elif reminding:
            log.error("broker unreachable since %s, for %.0f s (%s connection errors)", since, lasted, f"{errors:,}")


class OutageFilter(logging.Filter):
    """Drops what `OutageLog.suppress` says to drop (a logging filter never raises)."""

    def __init__(self, outages: OutageLog) -> None:
        super().__init__()
        self.outages = outages

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.outages.suppress(record)


def _watched_loggers() -> list[logging.Logger]:
    names = set(WATCHED)
    names.update(name for name, logger in logging.Logger.manager.loggerDict.items()
                 if isinstance(logger, logging.Logger) and name.startswith(WATCHED_PREFIXES))
    return [logging.getLogger(name) for name in sorted(names)]


def install(outages: OutageLog) -> OutageFilter:
    """Put one filter over `outages` on every watched logger (idempotent per logger: an earlier
    OutageFilter is replaced)."""
    chosen = OutageFilter(outages)
    for logger in _watched_loggers():
        for old in [f for f in logger.filters if isinstance(f, OutageFilter)]:
            logger.removeFilter(old)
        logger.addFilter(chosen)
    return chosen


def quiet_outages(settings: StreamSettings, interval_s: float = 1.0) -> OutageLog:
    """Install outage logging for this process (call it after importing the Kafka clients): a
    daemon thread calls `check` every interval_s, which probes the bootstrap servers only while
    an outage lasts."""
    servers = settings.bootstrap_servers()
    outages = OutageLog(lambda: tcp_reachable(servers, timeout_s=min(interval_s, 1.0)))

    def watch() -> None:
        while True:
            time.sleep(interval_s)
            outages.check()

    threading.Thread(target=watch, name="slatestream-outage-watch", daemon=True).start()
    install(outages)
    return outages
