"""Create what the pipelines need on the running services: topics, bucket, tables, lake root
(idempotent: `make up` runs it every time), and remove a pipeline's data again (throw-away
pipelines of tests and benchmarks).
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from loopline.core import db
from loopline.core.config import Settings, require_env
from loopline.core.spec import PipelineSpec

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


def admin_db_url() -> str:
    """The schema owner's URL: migrations and purges only, never given to a task."""
    return require_env("LOOPLINE_DB_ADMIN_URL")


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
    db.ensure_schema(admin_db_url(), application_role=urlparse(settings.db_url).username)
    report.append("postgres: schema loopline ready, application role granted")
    Path(settings.onprem_root).mkdir(parents=True, exist_ok=True)
    report.append("onprem tier: lake root ready")
    return report


def remove_pipeline_data(settings: Settings, spec: PipelineSpec) -> None:
    """Delete a pipeline's topics, its lake directories on every tier and its `loopline` rows."""
    from kafka import KafkaAdminClient
    from pyarrow.fs import FileType

    from loopline.core.storage import DatasetLocation, load_tiers

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        existing = set(admin.list_topics())
        admin.delete_topics([t for t in spec.topics if t in existing])
    finally:
        admin.close()
    for tier in load_tiers().values():
        location = DatasetLocation(tier, spec.name)
        if location.filesystem().get_file_info(location.arrow_path).type != FileType.NotFound:
            location.filesystem().delete_dir(location.arrow_path)
    with db.connect(admin_db_url()) as conn, conn.cursor() as cur:  # the application role cannot purge
        cur.execute("SET LOCAL loopline.purge = 'on'")  # lets the append-only alias history be purged
        cur.execute("SELECT c.table_name FROM information_schema.columns c JOIN information_schema.tables t "
                    "USING (table_schema, table_name) WHERE c.table_schema = 'loopline' AND c.column_name = 'pipeline' "
                    "AND t.table_type = 'BASE TABLE'")
        for (table,) in cur.fetchall():
            cur.execute(f"DELETE FROM loopline.{table} WHERE pipeline = %s", (spec.name,))
