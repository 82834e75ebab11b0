"""Infrastructure settings for the streaming side: broker, security, topics, worker store.

One `StreamSettings` object, read from the environment with the prefix `SLATESTREAM_`
(e.g. `SLATESTREAM_BROKER_URL=kafka://10.0.0.5:9092`, `SLATESTREAM_PARTITIONS=8`) or
passed explicitly (`StreamSettings(broker_url=..., topic_prefix=...)`). Secrets are
`SecretStr` and never appear in `repr`, nor do rejected values in validation errors; a
broker URL carrying credentials (`kafka://user:pass@host`) is refused. Model hyperparameters
live elsewhere (validated dataclasses in `online/`); this object only says where and how to
connect.
"""

from __future__ import annotations

import logging
import re
import ssl
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
log = logging.getLogger(__name__)

_TOPIC_CHARS = re.compile(r"^[A-Za-z0-9._-]*$")
MAX_TOPIC_SUFFIX = 12
"""Length of the longest topic name suffix ("impressions", "dead-letter"), plus margin."""


def parse_broker_url(url: str) -> list[str]:
    """Split a Faust-style broker URL into kafka-python "host:port" entries.

    Accepts "kafka://h1:9092", "kafka://h1:9092;kafka://h2:9092", "h1:9092,h2:9092";
    the port defaults to 9092. Raises ValueError naming the bad entry, except for an entry
    with credentials in it ("user:pass@host"): that error names neither (see
    StreamSettings.sasl_username and sasl_password for where they belong).
    """
    servers: list[str] = []
    for part in re.split(r"[;,]", url):
        entry = part.strip()
        if not entry:
            continue
        if "://" not in entry:
            entry = f"kafka://{entry}"
        parsed = urlsplit(entry)
        if "@" in parsed.netloc:
            raise ValueError("broker_url: credentials inside the URL are refused (they would be logged and shown); "
                             "set SLATESTREAM_SASL_USERNAME and SLATESTREAM_SASL_PASSWORD instead")
        if parsed.scheme != "kafka":
            raise ValueError(f"broker_url: scheme of {part.strip()!r} must be kafka://")
        try:
            port = parsed.port or 9092
        except ValueError as error:
            raise ValueError(f"broker_url: bad port in {part.strip()!r}") from error
        if not parsed.hostname or parsed.path not in ("", "/"):
            raise ValueError(f"broker_url: {part.strip()!r} is not kafka://host[:port]")
        host = f"[{parsed.hostname}]" if ":" in parsed.hostname else parsed.hostname
        servers.append(f"{host}:{port}")
    if not servers:
        raise ValueError("broker_url: no broker given")
    return servers


class StreamSettings(BaseSettings):
    """Where the Kafka broker is, how to authenticate, how topics are named and sized.

    Attributes:
        broker_url: Faust-style URL, "kafka://host:port", several joined with ";" or ",".
        security_protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
        sasl_mechanism: PLAIN / SCRAM-SHA-256 / SCRAM-SHA-512; required with SASL_*.
        sasl_username, sasl_password: SASL credentials; required with SASL_*.
        ssl_cafile: CA bundle (PEM) to verify the broker with SSL / SASL_SSL.
        ssl_certfile: client certificate (PEM) for mutual TLS with SSL / SASL_SSL; may hold
            the private key too.
        ssl_keyfile: the client certificate's private key (PEM), when not in ssl_certfile.
        ssl_password: the password of an encrypted private key.
        topic_prefix: prepended to every topic name ("slatestream." -> "slatestream.clicks").
        partitions: partitions per topic; user-keyed topics must be co-partitioned.
        replication_factor: replicas per topic (1 on the single-node dev broker).
        store_dir: directory of the worker's local state (RocksDB tables).
        app_id: Faust application id / consumer group id prefix.
        broker_session_timeout_s: consumer-group session timeout, seconds. A group join
            waits about half of it, so keep it short in tests (broker allows 6..1800 s).
        attribution_window_s: seconds after an impression during which a click counts.
        producer_max_batch_bytes: the worker's producer batch size per partition, bytes
            (state values are ~5 KB; Faust's 16 KB default sends three per batch).
        producer_linger_ms: how long the worker's producer waits to fill a batch, ms (0: send
            what accumulated while the previous request was in flight; slates wait for nothing).
        consumer_max_fetch_bytes: the most one fetch brings of one partition, bytes (Faust's
            1 MiB default left the feedback lane waiting between batches: with 8 MiB the consumer
            thread has the next batch fetched while the lane learns the last; README).
        request_ttl_s: the longest a click may follow its request (event times), seconds;
            at least the attribution window. Later clicks are dead-lettered.
        metrics_port, metrics_host: where the worker serves /metrics, /healthz, /readyz and
            /status (streams.worker.service); port 0 turns them off.
        preflight_timeout_s: how long the broker check every command, the worker and the client
            run first may take, seconds (streams.preflight: it names an unreachable broker, a
            failed authentication or missing authorisation instead of a 30 s bootstrap timeout).
    """

    model_config = SettingsConfigDict(env_prefix="SLATESTREAM_", frozen=True, extra="ignore",
                                      hide_input_in_errors=True)

    broker_url: str = "kafka://127.0.0.1:9092"
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_password: SecretStr | None = None
    topic_prefix: str = Field(default="slatestream.", max_length=249 - MAX_TOPIC_SUFFIX)
    partitions: int = Field(default=4, ge=1, le=10_000)
    replication_factor: int = Field(default=1, ge=1, le=32)
    store_dir: Path = Path(".data/worker")
    app_id: str = Field(default="slatestream", min_length=1, max_length=200)
    broker_session_timeout_s: float = Field(default=10.0, ge=6.0, le=1800.0)
    attribution_window_s: float = Field(default=1800.0, gt=0.0)
    producer_max_batch_bytes: int = Field(default=1_000_000, ge=16_384, le=16_000_000)
    producer_linger_ms: int = Field(default=0, ge=0, le=1000)
    consumer_max_fetch_bytes: int = Field(default=8 * 1024 * 1024, ge=65_536, le=256 * 1024 * 1024)
    request_ttl_s: float = Field(default=86_400.0, gt=0.0)
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    metrics_host: str = "0.0.0.0"  # noqa: S104 - the worker's endpoints are for the cluster's probes and scrapers
    preflight_timeout_s: float = Field(default=5.0, gt=0.0, le=300.0)

    @field_validator("broker_url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        parse_broker_url(value)
        return value

    @field_validator("topic_prefix", "app_id")
    @classmethod
    def _topic_safe(cls, value: str) -> str:
        if not _TOPIC_CHARS.match(value):
            raise ValueError("may only contain ASCII letters, digits, '.', '_' and '-'")
        return value

    @model_validator(mode="after")
    def _security_complete(self) -> StreamSettings:
        if self.security_protocol.startswith("SASL_"):
            self.sasl_credentials()  # raises ValueError naming what is missing
            if self.security_protocol == "SASL_PLAINTEXT" and self.sasl_mechanism == "PLAIN":
                log.warning("SASL PLAIN over SASL_PLAINTEXT: the password crosses the network in clear text; "
                            "use SASL_SSL (or a SCRAM mechanism)")
        if self.request_ttl_s < self.attribution_window_s:
            raise ValueError("request_ttl_s must be at least attribution_window_s (clicks would be refused)")
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: {path} is not a file")
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            raise ValueError("ssl_keyfile needs ssl_certfile (the client certificate it belongs to)")
        if self.ssl_password is not None and self.ssl_certfile is None:
            raise ValueError("ssl_password needs ssl_certfile (it unlocks the client certificate's key)")
        if self.ssl_certfile is not None and not self.security_protocol.endswith("SSL"):
            raise ValueError(f"ssl_certfile needs security_protocol SSL or SASL_SSL, not {self.security_protocol}")
        return self

    def sasl_credentials(self) -> tuple[SaslMechanism, str, SecretStr]:
        """(mechanism, username, password) for a SASL_* protocol; ValueError naming what is missing."""
        mechanism, username, password = self.sasl_mechanism, self.sasl_username, self.sasl_password
        if mechanism is None or username is None or password is None:
            missing = [name for name, value in (("sasl_mechanism", mechanism), ("sasl_username", username),
                                                ("sasl_password", password)) if value is None]
            raise ValueError(f"{', '.join(missing)} required with security_protocol={self.security_protocol}")
        return mechanism, username, password

    def bootstrap_servers(self) -> list[str]:
        """["host:port", ...] for kafka-python / aiokafka `bootstrap_servers`."""
        return parse_broker_url(self.broker_url)

    def kafka_client_config(self) -> dict[str, Any]:
        """Connection keyword arguments shared by kafka-python producers, consumers, admins.

        Holds `bootstrap_servers` and the security options (the password revealed here
        only). Pass as `KafkaProducer(**settings.kafka_client_config(), ...)`.
        """
        config: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers(),
            "security_protocol": self.security_protocol,
        }
        if self.ssl_cafile is not None:
            config["ssl_cafile"] = str(self.ssl_cafile)
        if self.ssl_certfile is not None:
            config["ssl_certfile"] = str(self.ssl_certfile)
            if self.ssl_keyfile is not None:
                config["ssl_keyfile"] = str(self.ssl_keyfile)
            if self.ssl_password is not None:
                config["ssl_password"] = self.ssl_password.get_secret_value()
        if self.security_protocol.startswith("SASL_"):
            mechanism, username, password = self.sasl_credentials()
            config["sasl_mechanism"] = mechanism
            config["sasl_plain_username"] = username
            config["sasl_plain_password"] = password.get_secret_value()
        return config

    def aiokafka_client_config(self) -> dict[str, Any]:
        """`kafka_client_config` for aiokafka clients: the TLS options as one `ssl_context`."""
        config = {key: value for key, value in self.kafka_client_config().items() if not key.startswith("ssl_")}
        if self.security_protocol in ("SSL", "SASL_SSL"):
            config["ssl_context"] = self.ssl_context()
        return config

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context: verifies the broker (ssl_cafile, else the system's CAs) and
        presents the client certificate when ssl_certfile is set. ValueError naming the
        files when the certificate or key cannot be loaded (the password never shown)."""
        context = ssl.create_default_context(cafile=self.ssl_cafile)
        if self.ssl_certfile is not None:
            password = None if self.ssl_password is None else self.ssl_password.get_secret_value()
            try:
                context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile, password)
            except (ssl.SSLError, OSError) as error:
                raise ValueError(f"ssl_certfile/ssl_keyfile: cannot load the client certificate "
                                 f"{self.ssl_certfile} (key {self.ssl_keyfile or 'in the same file'}): "
                                 f"{error.__class__.__name__}: {getattr(error, 'reason', None) or error}") from None
        return context
