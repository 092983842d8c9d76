"""Create what the pipelines need on the running services: topics, bucket, tables, lake root.

Idempotent: `make up` runs it every time.
"""
from __future__ import annotations

from pathlib import Path

from loopline import db
from loopline.config import Settings
from loopline.spec import PipelineSpec

TOPIC_PARTITIONS = 2


def ensure_topics(bootstrap: str, topics: list[str]) -> list[str]:
    """Create missing topics; return the ones created."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="loopline-bootstrap")
    try:
        missing = sorted(set(topics) - set(admin.list_topics()))
        if missing:
            admin.create_topics([NewTopic(t, num_partitions=TOPIC_PARTITIONS, replication_factor=1) for t in missing])
        return missing
    finally:
        admin.close()


def s3_client(settings: Settings):
    import boto3

    return boto3.client("s3", endpoint_url=settings.s3_endpoint)


def ensure_bucket(settings: Settings) -> bool:
    """Create the bucket if missing; return True when it was created."""
    client = s3_client(settings)
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if settings.s3_bucket in existing:
        return False
    client.create_bucket(Bucket=settings.s3_bucket)
    return True


def bootstrap(settings: Settings, specs: list[PipelineSpec]) -> list[str]:
    """Prepare every service for the given pipelines; return one line per action, for the log."""
    report = []
    topics = [t for spec in specs for t in spec.topics]
    created = ensure_topics(settings.kafka_bootstrap, topics)
    report.append(f"kafka: {len(topics)} topics present ({len(created)} created)")
    report.append(f"object store: bucket {settings.s3_bucket} " + ("created" if ensure_bucket(settings) else "present"))
    db.ensure_schema(settings.db_url)
    report.append("postgres: schema loopline ready")
    Path(settings.onprem_root).mkdir(parents=True, exist_ok=True)
    report.append("onprem tier: lake root ready")
    return report
