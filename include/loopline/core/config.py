"""Service endpoints and credentials, read from the environment (never from the repo).

`make setup` writes local defaults to `.loopline/env`; in production the same variables
come from the deployment (or Airflow connections exported as environment).
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loopline.core.kafka_auth import KafkaLogin, Role

REPOSITORY = Path(__file__).resolve().parents[3]  # the checkout: include/loopline/core/config.py


# Settings whose values are (or, for URLs, may carry) credentials, by name.
CREDENTIAL_SETTING = re.compile(r"PASSWORD|SECRET|TOKEN|_URL$|_URI$")
URL_PASSWORD = re.compile(r"^[a-z0-9+.-]+://[^:/@]*:([^@]+)@")
REDACTED = "***"


def credential_values(settings: Mapping[str, str]) -> list[str]:
    """The secret parts of credential settings: passwords, tokens, and the password in a URL."""
    values = []
    for name, value in settings.items():
        if not CREDENTIAL_SETTING.search(name) or not value:
            continue
        if "://" in value:
            password = URL_PASSWORD.match(value)
            values += [password.group(1)] if password else []
        else:
            values.append(value)
    return values


def redact(text: str) -> str:
    """`text` with every credential this process holds replaced by ***: for what leaves the
    process as text (alerts), where no log masker runs."""
    for secret in sorted(credential_values(os.environ), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


class ConfigError(RuntimeError):
    """A required setting is missing from the environment."""


def require_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ConfigError(
            f"environment variable {name} is not set. Locally, run `make setup` and "
            f"`source .loopline/env`; elsewhere, set it in the deployment."
        )
    return value


@dataclass(frozen=True)
class Settings:
    db_url: str
    kafka_bootstrap: str
    s3_endpoint: str
    s3_bucket: str
    onprem_root: str
    mlflow_tracking_uri: str
    spark_remote: str | None
    spark_master: str
    # Each topic Loopline creates: copies kept, and copies a write waits for (with acks=all).
    # 1 and 1 for one broker; a cluster of three keeps 3 and waits for 2, so it loses a broker
    # without losing a write or refusing one.
    kafka_replication_factor: int = 1
    kafka_min_insync_replicas: int = 1

    def kafka(self, role: "Role") -> "KafkaLogin":
        """The Kafka login of one component (its principal's ACLs allow only what it does)."""
        from loopline.core.kafka_auth import KafkaLogin

        return KafkaLogin.for_role(self.kafka_bootstrap, role)

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(
            db_url=require_env("LOOPLINE_DB_URL"),
            kafka_bootstrap=require_env("LOOPLINE_KAFKA_BOOTSTRAP"),
            s3_endpoint=require_env("LOOPLINE_S3_ENDPOINT"),
            s3_bucket=require_env("LOOPLINE_S3_BUCKET"),
            onprem_root=require_env("LOOPLINE_ONPREM_ROOT"),
            mlflow_tracking_uri=require_env("MLFLOW_TRACKING_URI"),
            spark_remote=os.environ.get("SPARK_REMOTE") or None,
            spark_master=os.environ.get("LOOPLINE_SPARK_MASTER", "local[2]"),
            kafka_replication_factor=int(os.environ.get("LOOPLINE_KAFKA_REPLICATION_FACTOR", "1")),
            kafka_min_insync_replicas=int(os.environ.get("LOOPLINE_KAFKA_MIN_INSYNC_REPLICAS", "1")),
        )
