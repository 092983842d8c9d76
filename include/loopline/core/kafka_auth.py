"""Who Loopline is to Kafka: one SASL/SCRAM principal per component, each allowed by ACLs only
what it does (loopline.ops.bootstrap grants them per pipeline).

    admin     creates and deletes topics, grants ACLs (a super user)
    ingest    reads the source topics, writes their dead-letter topics
    producer  writes the source topics (replay, simulators) and reads them back to resume
    scoring   writes the predictions topic
    reader    reads the predictions and dead-letter topics (downstream consumers, audits)

The environment names each principal's login: LOOPLINE_KAFKA_<ROLE>_USER and
LOOPLINE_KAFKA_<ROLE>_PASSWORD. A role without a user connects without SASL, which only a
broker without authentication accepts. LOOPLINE_KAFKA_SASL_MECHANISM picks the SCRAM variant:
SCRAM-SHA-256 (Loopline's brokers) by default; Strimzi's brokers take SCRAM-SHA-512.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Literal

Role = Literal["admin", "ingest", "producer", "scoring", "reader"]
DEFAULT_MECHANISM = "SCRAM-SHA-256"
LIBRDKAFKA_LOG = logging.getLogger("loopline.librdkafka")


@dataclass(frozen=True)
class KafkaLogin:
    """How one component reaches the brokers: for kafka-python, librdkafka and Spark's Kafka connector."""

    bootstrap: str
    user: str | None = None
    password: str | None = None
    mechanism: str = DEFAULT_MECHANISM

    @classmethod
    def for_role(cls, bootstrap: str, role: Role) -> "KafkaLogin":
        prefix = f"LOOPLINE_KAFKA_{role.upper()}"
        return cls(bootstrap, os.environ.get(f"{prefix}_USER") or None, os.environ.get(f"{prefix}_PASSWORD") or None,
                   os.environ.get("LOOPLINE_KAFKA_SASL_MECHANISM") or DEFAULT_MECHANISM)

    def python(self) -> dict[str, str]:
        """Keyword arguments for kafka-python's clients."""
        if self.user is None:
            return {"bootstrap_servers": self.bootstrap}
        return {"bootstrap_servers": self.bootstrap, "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": self.mechanism, "sasl_plain_username": self.user, "sasl_plain_password": self.password}

    def librdkafka(self) -> dict[str, object]:
        """Configuration for confluent-kafka's (librdkafka's) clients; their log lines go to
        Python's logging (as the task's log), not straight to stderr."""
        config: dict[str, object] = {"bootstrap.servers": self.bootstrap, "logger": LIBRDKAFKA_LOG}
        if self.user is None:
            return config
        return config | {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": self.mechanism,
                         "sasl.username": self.user, "sasl.password": self.password}

    def spark(self) -> dict[str, str]:
        """Options for Spark's Kafka source and sink (Spark redacts values holding a password)."""
        options = {"kafka.bootstrap.servers": self.bootstrap}
        if self.user is not None:
            escaped = self.password.replace("\\", "\\\\").replace('"', '\\"')
            options |= {"kafka.security.protocol": "SASL_PLAINTEXT", "kafka.sasl.mechanism": self.mechanism,
                        "kafka.sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule "
                                                  f'required username="{self.user}" password="{escaped}";'}
        return options
