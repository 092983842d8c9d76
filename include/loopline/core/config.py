"""Service endpoints and credentials, read from the environment (never from the repo).

`make setup` writes local defaults to `.loopline/env`; in production the same variables
come from the deployment (or Airflow connections exported as environment).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loopline.core.kafka_auth import KafkaLogin, Role

REPOSITORY = Path(__file__).resolve().parents[3]  # the checkout: include/loopline/core/config.py


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
        )
