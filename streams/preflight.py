"""Check the broker before using it: reachable, speaking our protocol, authenticated, authorised.

    check_broker(settings, topics=["slatestream.requests"], group="slatestream-slatestream")

kafka-python and aiokafka retry a failing bootstrap for 30 s and then say "Unable to bootstrap",
whatever the cause: a wrong address, a wrong password, a TLS mismatch and missing ACLs look
alike. This check connects to the first bootstrap server that accepts a TCP connection with
aiokafka's connection (`aiokafka.conn.create_conn`: TLS, ApiVersions and the SASL exchange, whose
error codes it keeps), asks for the metadata of `topics` (never creating them) and for the coordinator of
`group`, and within `timeout_s` (5 s by default) either returns what it found or raises the
`BrokerCheckError` that names the cause and the settings to check:

- no TCP connection (refused, no such host, timeout), or the brokers the cluster advertises
  cannot be reached: `BrokerUnreachableError`, naming SLATESTREAM_BROKER_URL (or the broker's
  advertised.listeners);
- the TLS handshake or the certificate fails: `BrokerTlsError` (SLATESTREAM_SECURITY_PROTOCOL,
  SLATESTREAM_SSL_CAFILE, SLATESTREAM_SSL_CERTFILE);
- the listener speaks another security protocol: `BrokerProtocolError` (SLATESTREAM_SECURITY_PROTOCOL);
- a wrong user or password, or a mechanism the broker does not enable: `BrokerAuthenticationError`
  (SLATESTREAM_SASL_USERNAME, SLATESTREAM_SASL_PASSWORD, SLATESTREAM_SASL_MECHANISM);
- the topics or the consumer group are not authorised: `BrokerAuthorizationError`
  (SLATESTREAM_SASL_USERNAME, SLATESTREAM_TOPIC_PREFIX, SLATESTREAM_APP_ID).

Topics that do not exist are not an error (they are reported in `BrokerCheck.missing_topics`).
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka import errors as kafka_errors
from aiokafka.conn import create_conn
from aiokafka.protocol.coordination import FindCoordinatorRequest
from aiokafka.protocol.metadata import MetadataRequest

from streams.settings import StreamSettings

T = TypeVar("T")
DEFAULT_TIMEOUT_S = 5.0
_GROUP_COORDINATOR = 0
"""FindCoordinator key type of a consumer group."""


class BrokerCheckError(RuntimeError):
    """The broker cannot be used with these settings; the message says why and what to check."""


class BrokerUnreachableError(BrokerCheckError):
    """No TCP connection to any bootstrap server, or to a broker the cluster advertises."""


class BrokerTlsError(BrokerCheckError):
    """The TLS handshake failed (certificate, CA, or a listener without TLS)."""


class BrokerProtocolError(BrokerCheckError):
    """The listener expects another security protocol than the one configured."""


class BrokerAuthenticationError(BrokerCheckError):
    """SASL authentication failed: wrong credentials, or a mechanism the broker does not enable."""


class BrokerAuthorizationError(BrokerCheckError):
    """Authenticated, but not allowed to use the topics or the consumer group."""


@dataclass(frozen=True)
class BrokerCheck:
    """What a successful check found.

    Attributes:
        server: the bootstrap server that answered, "host:port".
        brokers: the brokers the cluster advertises, "host:port" each.
        missing_topics: the asked-for topics that do not exist (yet).
        took_s: seconds the check took.
    """

    server: str
    brokers: tuple[str, ...]
    missing_topics: tuple[str, ...]
    took_s: float


def check_broker(settings: StreamSettings, topics: Sequence[str] = (), group: str | None = None,
                 timeout_s: float | None = None) -> BrokerCheck:
    """`check_broker_async` from synchronous code (a thread of its own when an event loop runs
    in this one). `timeout_s` defaults to `settings.preflight_timeout_s`."""
    return run_blocking(lambda: check_broker_async(settings, topics, group, timeout_s))


async def check_broker_async(settings: StreamSettings, topics: Sequence[str] = (), group: str | None = None,
                             timeout_s: float | None = None) -> BrokerCheck:
    """Connect to the first bootstrap server that accepts a TCP connection, authenticate, read the
    metadata of `topics` and the coordinator of `group`; BrokerCheckError (a subclass naming the
    cause) when that fails or takes more than `timeout_s` seconds."""
    began = time.monotonic()
    timeout_s = settings.preflight_timeout_s if timeout_s is None else timeout_s
    deadline = began + max(timeout_s, 0.1)
    host, port = await _first_reachable(settings, deadline)
    conn = await _connect(settings, host, port, deadline)
    try:
        metadata = await _ask(conn.send(MetadataRequest(list(topics), allow_auto_topic_creation=False)), deadline,
                              "metadata", settings, f"{host}:{port}")
        brokers = tuple(f"{b[1]}:{b[2]}" for b in metadata.brokers)
        missing = _topic_errors(settings, [(t[1], t[0]) for t in metadata.topics])
        if group is not None:
            found = await _ask(conn.send(FindCoordinatorRequest(group, _GROUP_COORDINATOR)), deadline,
                               "the group coordinator", settings, f"{host}:{port}")
            _group_error(settings, group, found.error_code)
    finally:
        conn.close()
    await _advertised_reachable(settings, f"{host}:{port}", brokers, deadline)
    return BrokerCheck(f"{host}:{port}", brokers, missing, time.monotonic() - began)


def run_blocking(make: Callable[[], Awaitable[T]]) -> T:
    """Run the coroutine `make()` to its end: on a new event loop here, or on one in a thread of
    its own when this thread already runs an event loop (asyncio.run refuses to nest)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_awaited(make))
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(_awaited(make))
        except BaseException as error:  # handed to the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=target, name="slatestream-preflight", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    value: T = outcome["value"]
    return value


async def _awaited(make: Callable[[], Awaitable[T]]) -> T:
    return await make()


def _servers(settings: StreamSettings) -> list[tuple[str, int]]:
    out = []
    for server in settings.bootstrap_servers():
        host, _, port = server.rpartition(":")
        out.append((host.strip("[]"), int(port)))
    return out


def _left(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.01)


async def _tcp(host: str, port: int, timeout_s: float) -> str | None:
    """None when a TCP connection to host:port opens within timeout_s, else why not."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except TimeoutError:
        return f"no answer within {timeout_s:.1f} s"
    except OSError as error:
        return error.strerror or str(error) or type(error).__name__
    writer.close()
    return None


async def _first_reachable(settings: StreamSettings, deadline: float) -> tuple[str, int]:
    """The first bootstrap server that accepts a TCP connection (each gets an equal share of the
    time left); BrokerUnreachableError listing why each failed."""
    servers = _servers(settings)
    failures = []
    for n, (host, port) in enumerate(servers):
        why = await _tcp(host, port, _left(deadline) / (len(servers) - n))
        if why is None:
            return host, port
        failures.append(f"{host}:{port}: {why}")
    raise BrokerUnreachableError(
        f"no Kafka broker reachable at {settings.broker_url} ({'; '.join(failures)}): check SLATESTREAM_BROKER_URL "
        "(kafka://host:port, several joined by ';') and that the broker runs and this host may reach it")


async def _connect(settings: StreamSettings, host: str, port: int, deadline: float) -> Any:
    """aiokafka's connection to host:port, authenticated; the BrokerCheckError naming the cause."""
    config = settings.aiokafka_client_config()
    config.pop("bootstrap_servers")
    server, protocol = f"{host}:{port}", settings.security_protocol
    try:
        return await asyncio.wait_for(create_conn(host, port, client_id=f"{settings.app_id}-preflight",
                                                  request_timeout_ms=int(_left(deadline) * 1000), **config),
                                      _left(deadline))
    except kafka_errors.SaslAuthenticationFailed as error:
        raise BrokerAuthenticationError(
            f"authentication failed at {server} (SASL {settings.sasl_mechanism}, user {settings.sasl_username!r}): "
            f"{_reason(error)}: check SLATESTREAM_SASL_USERNAME and SLATESTREAM_SASL_PASSWORD") from None
    except kafka_errors.UnsupportedSaslMechanismError:
        raise BrokerAuthenticationError(
            f"authentication failed at {server}: its listener does not enable SASL mechanism "
            f"{settings.sasl_mechanism}: check SLATESTREAM_SASL_MECHANISM") from None
    except kafka_errors.IllegalSaslStateError:
        raise BrokerProtocolError(
            f"{server} refused the SASL handshake: its listener does not expect SASL; check "
            f"SLATESTREAM_SECURITY_PROTOCOL ({protocol}; PLAINTEXT or SSL?) and SLATESTREAM_BROKER_URL") from None
    except ssl.SSLCertVerificationError as error:
        raise BrokerTlsError(
            f"TLS to {server}: the broker's certificate is not trusted ({error.verify_message}): check "
            "SLATESTREAM_SSL_CAFILE (the CA that signed it) and the host name in SLATESTREAM_BROKER_URL") from None
    except TimeoutError:  # before OSError, its base class
        raise _handshake_error(settings, server, None) from None
    except (ssl.SSLError, OSError) as error:
        raise _handshake_error(settings, server, error) from None
    except kafka_errors.KafkaError as error:
        raise _handshake_error(settings, server, error) from None


def _handshake_error(settings: StreamSettings, server: str, error: BaseException | None) -> BrokerCheckError:
    """The error for a connection that opened but broke (or stalled) during TLS, ApiVersions or
    SASL: with TLS configured, a TLS problem; without it, the listener expects something else."""
    protocol = settings.security_protocol
    happened = "did not complete the handshake in time" if error is None else f"broke the handshake: {_reason(error)}"
    if protocol.endswith("SSL"):
        return BrokerTlsError(
            f"{server} accepted a TCP connection but {happened}: check SLATESTREAM_SECURITY_PROTOCOL ({protocol}: "
            "does the listener use TLS?), SLATESTREAM_SSL_CAFILE and SLATESTREAM_SSL_CERTFILE")
    return BrokerProtocolError(
        f"{server} accepted a TCP connection but {happened}: its listener may expect another security protocol; "
        f"check SLATESTREAM_SECURITY_PROTOCOL ({protocol}: SASL_PLAINTEXT, SSL or SASL_SSL?) and "
        "SLATESTREAM_BROKER_URL (a Kafka listener's port?)")


def _reason(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.split(": ", 1)[1] if text.startswith("[Error ") and ": " in text else text


async def _ask(request: Awaitable[T], deadline: float, what: str, settings: StreamSettings, server: str) -> T:
    try:
        return await asyncio.wait_for(request, _left(deadline))
    except (TimeoutError, kafka_errors.KafkaError, OSError) as error:
        raise _handshake_error(settings, server, None if isinstance(error, TimeoutError) else error) from None


def _topic_errors(settings: StreamSettings, topics: list[tuple[str, int]]) -> tuple[str, ...]:
    """The topics that do not exist; BrokerAuthorizationError when any is not authorised."""
    denied = [name for name, code in topics if code == kafka_errors.TopicAuthorizationFailedError.errno]
    if denied:
        raise BrokerAuthorizationError(
            f"{_principal(settings)} is not authorised to describe topics {sorted(denied)}: grant it ACLs on them "
            "(Describe, Read, Write; Create for the worker) or check SLATESTREAM_SASL_USERNAME and "
            "SLATESTREAM_TOPIC_PREFIX")
    return tuple(sorted(name for name, code in topics if code == kafka_errors.UnknownTopicOrPartitionError.errno))


def _group_error(settings: StreamSettings, group: str, code: int) -> None:
    if code == kafka_errors.GroupAuthorizationFailedError.errno:
        raise BrokerAuthorizationError(
            f"{_principal(settings)} is not authorised to use consumer group {group!r}: grant it ACLs on the group "
            "(Describe, Read) or check SLATESTREAM_SASL_USERNAME, SLATESTREAM_APP_ID and SLATESTREAM_TOPIC_PREFIX "
            "(the group is <app id>-<prefix>)")


def _principal(settings: StreamSettings) -> str:
    if settings.sasl_username is not None:
        return f"user {settings.sasl_username!r}"
    return "this client (no SASL user: the broker's ANONYMOUS or certificate principal)"


async def _advertised_reachable(settings: StreamSettings, server: str, brokers: Sequence[str],
                                deadline: float) -> None:
    """BrokerUnreachableError when a broker the cluster advertises cannot be reached from here
    (the classic advertised.listeners mistake: the bootstrap server answers, nothing else does)."""
    for broker in brokers:
        host, _, port = broker.rpartition(":")
        why = await _tcp(host, int(port), _left(deadline))
        if why is not None:
            raise BrokerUnreachableError(
                f"{server} answered, but the cluster advertises broker {broker}, which this host cannot reach "
                f"({why}): the broker's advertised.listeners must name an address clients reach "
                "(SLATESTREAM_BROKER_URL only finds the cluster)")
