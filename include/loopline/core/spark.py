"""One place for Spark settings, shared by the Spark Connect server and local sessions.

Tasks talk to a long-lived Spark Connect server when SPARK_REMOTE is set (no JVM start per
task); `spark-submit spark_jobs/...` and tests without it get a classic local session with
the same settings and the jars `make setup` resolved from Maven Central.

    python -m loopline.core.spark   # print these settings as spark-defaults properties
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from loopline.core.config import Settings


def session_conf(settings: Settings) -> dict[str, str]:
    """Settings every Loopline Spark session needs, whichever way it is started."""
    return {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "4",
        "spark.sql.parquet.compression.codec": "zstd",
        # The only cache is one ingest micro-batch, held for seconds: compressing it cost 1.3 s
        # per million rows (measured), more than the memory it saves is worth.
        "spark.sql.inMemoryColumnarStorage.compressed": "false",
        # Rows per Arrow batch handed to Python (scoring's mapInPandas): 10k (Spark's default)
        # scored 1M rows in 5.6 s, 100k in 4.1 s (benchmarks/score.py); memory stays small.
        "spark.sql.execution.arrow.maxRecordsPerBatch": "100000",
        # Hadoop sets file modes itself (umask 022 by default), not from the process umask:
        # on-prem lake files are their owner's alone.
        "spark.hadoop.fs.permissions.umask-mode": "077",
        # A stopped streaming query (a stall, a failed or timed-out task) waits at most this long
        # for its thread, which may be blocked on a service that stopped answering.
        "spark.sql.streaming.stopTimeout": "60s",
        "spark.hadoop.fs.s3a.endpoint": settings.s3_endpoint,
        "spark.hadoop.fs.s3a.endpoint.region": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.connection.ssl.enabled": str(settings.s3_endpoint.startswith("https")).lower(),
        # Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the environment,
        # never from a properties file or a command line.
        "spark.hadoop.fs.s3a.aws.credentials.provider":
            "software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider",
        **s3_tier_endpoints(),
    }


def s3_tier_endpoints() -> dict[str, str]:
    """Per-bucket endpoints, so S3 tiers on different stores work side by side."""
    from loopline.core.storage import load_tiers

    return {f"spark.hadoop.fs.s3a.bucket.{tier.root.split('/')[0]}.endpoint": tier.s3_endpoint
            for tier in load_tiers().values() if tier.scheme == "s3" and tier.s3_endpoint}


def tools_dir() -> Path:
    """Where `make setup` put what it built (the jars' classpaths): the state folder, or apart
    from it in the image (LOOPLINE_TOOLS_DIR)."""
    return Path(os.environ.get("LOOPLINE_TOOLS_DIR") or os.environ.get("LOOPLINE_STATE_DIR", ".loopline"))


def extra_jars() -> list[str]:
    """Jars pyspark does not ship (Kafka source, S3A, JDBC), as resolved by `make setup`."""
    classpath = tools_dir() / "classpath" / "spark.cp"
    return classpath.read_text().strip().split(":") if classpath.exists() else []


def get_spark(settings: Settings):
    """A SparkSession: remote (Spark Connect) when configured, else local with the same settings."""
    from pyspark.sql import SparkSession

    if settings.spark_remote:
        return SparkSession.builder.remote(settings.spark_remote).getOrCreate()
    builder = SparkSession.builder.master(settings.spark_master).appName("loopline")
    for key, value in {**session_conf(settings), "spark.jars": ",".join(extra_jars())}.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def main() -> int:
    print("\n".join(f"{k}={v}" for k, v in session_conf(Settings.from_env()).items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
