"""A real broker with a SASL_PLAINTEXT listener (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) and ACLs.

    broker = start_sasl_broker(broker_module)   # KafkaBroker subclass from deploy/kafka/broker.py
    broker.sasl_url                             # kafka://127.0.0.1:PORT, the SASL listener
    broker.bootstrap                            # 127.0.0.1:PORT, PLAINTEXT (ANONYMOUS: a super user)

Users: "svc" (password SVC_PASSWORD, every mechanism) is a super user; "reader" (PLAIN,
READER_PASSWORD) authenticates but has no ACL, so it may use no topic and no group (the
StandardAuthorizer denies what no ACL allows).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from kafka.admin import KafkaAdminClient, UserScramCredentialUpsertion

SVC_PASSWORD = "svc-s3cret"
READER_PASSWORD = "reader-s3cret"
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def sasl_properties(port: int, controller_port: int, sasl_port: int) -> dict[str, str]:
    """server.properties entries adding the SASL listener, its mechanisms, users and the authorizer."""
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    return {
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port},"
                     f"SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": ",".join(MECHANISMS),
        "listener.name.sasl_plaintext.plain.sasl.jaas.config":
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'user_svc="{SVC_PASSWORD}" user_reader="{READER_PASSWORD}";',
        "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config": scram,
        "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": scram,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:ANONYMOUS;User:svc",
    }


def start_sasl_broker(broker_module: ModuleType, **kwargs: Any) -> Any:
    """A started KafkaBroker with the SASL listener (attributes `sasl_port`, `sasl_url`) and the
    SCRAM credentials of "svc" for both SCRAM mechanisms."""
    ports: set[int] = set()
    while len(ports) < 3:
        ports.add(broker_module.free_port())
    port, controller, sasl_port = sorted(ports)
    broker = broker_module.KafkaBroker(port, controller, properties=sasl_properties(port, controller, sasl_port),
                                       **kwargs)
    broker.start()
    broker.sasl_port = sasl_port
    broker.sasl_url = f"kafka://127.0.0.1:{sasl_port}"
    try:
        with KafkaAdminClient(bootstrap_servers=broker.bootstrap) as admin:
            for mechanism in MECHANISMS[1:]:  # one alteration per user and request
                failed = admin.alter_user_scram_credentials([UserScramCredentialUpsertion("svc", mechanism,
                                                                                          SVC_PASSWORD)])
                assert not any(failed.values()), failed
    except BaseException:
        broker.stop()
        raise
    return broker
