"""Create what the pipelines need on the running services: topics, bucket, tables, lake root
(idempotent: `make up` runs it every time), and remove a pipeline's data again (throw-away
pipelines of tests and benchmarks).
"""
from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlparse

from loopline.core import db
from loopline.core.config import Settings, require_env
from loopline.core.spec import PipelineSpec

TOPIC_PARTITIONS = 2


def topic_grants(spec: PipelineSpec) -> dict[str, dict[str, tuple[str, ...]]]:
    """What each Kafka principal may do on the pipeline's topics (loopline.core.kafka_auth)."""
    kafka = [s for s in spec.sources.values() if s.kind == "kafka"]
    sources, dead_letters = [s.topic for s in kafka], [spec.dead_letter_topic(s) for s in kafka]
    return {
        "ingest": {**{t: ("READ", "DESCRIBE") for t in sources}, **{t: ("WRITE", "DESCRIBE") for t in dead_letters}},
        "producer": {t: ("WRITE", "READ", "DESCRIBE") for t in sources},
        "scoring": {spec.predictions_topic: ("WRITE", "READ", "DESCRIBE")},  # READ: checks an interrupted publish
        "reader": {t: ("READ", "DESCRIBE") for t in [spec.predictions_topic, *dead_letters]},
    }


# Spark's Kafka source names its consumer groups `spark-kafka-source-...`; librdkafka's consumer,
# which scoring reads its topic back with, needs a group even though it commits nothing.
GROUP_GRANTS = {"ingest": "spark-kafka-source", "scoring": "loopline-scoring", "reader": "loopline-reader"}
# Producers may write in transactions under these transactional ids (ingest reads read_committed;
# scoring publishes each batch of predictions in one transaction).
TRANSACTIONAL_ID_GRANTS = {"producer": "loopline-producer", "scoring": "loopline-scoring"}


def ensure_topics(settings: Settings, specs: list[PipelineSpec]) -> list[str]:
    """Create the pipelines' missing topics and grant each principal its ACLs on them (as the
    admin principal; idempotent); return the topics created."""
    from kafka import KafkaAdminClient
    from kafka.admin import (ACL, ACLOperation, ACLPermissionType, ACLResourcePatternType, NewTopic,
                             ResourcePattern, ResourceType)

    admin = KafkaAdminClient(**settings.kafka("admin").python(), client_id="loopline-bootstrap")
    try:
        topics = [t for spec in specs for t in spec.topics]
        missing = sorted(set(topics) - set(admin.list_topics()))
        if missing:
            admin.create_topics([NewTopic(t, num_partitions=TOPIC_PARTITIONS,
                                          replication_factor=settings.kafka_replication_factor,
                                          topic_configs={"min.insync.replicas": str(settings.kafka_min_insync_replicas)})
                                 for t in missing])
        if settings.kafka("admin").user is None:
            return missing  # a broker without authentication has no ACLs to grant

        def allow(role: str, operation: str, pattern: ResourcePattern) -> ACL:
            return ACL(f"User:{settings.kafka(role).user}", "*", ACLOperation[operation], ACLPermissionType.ALLOW,
                       pattern)

        acls = [allow(role, operation, ResourcePattern(ResourceType.TOPIC, topic))
                for spec in specs for role, grants in topic_grants(spec).items()
                for topic, operations in grants.items() for operation in operations]
        acls += [allow(role, "READ", ResourcePattern(ResourceType.GROUP, prefix, ACLResourcePatternType.PREFIXED))
                 for role, prefix in GROUP_GRANTS.items()]
        acls += [allow(role, operation,
                       ResourcePattern(ResourceType.TRANSACTIONAL_ID, prefix, ACLResourcePatternType.PREFIXED))
                 for role, prefix in TRANSACTIONAL_ID_GRANTS.items() for operation in ("WRITE", "DESCRIBE")]
        refused = admin.create_acls(acls)["failed"]
        if refused:
            raise RuntimeError(f"Kafka refused {len(refused)} ACLs, e.g. {refused[0]}")
        _await_acls(admin, acls)
        return missing
    finally:
        admin.close()


def _await_acls(admin, acls: list, timeout_s: float = 30.0) -> None:
    """Wait until the broker enforces the ACLs just created. The controller commits them before
    it answers, but the broker applies them from the metadata log a moment later; a client that
    writes at once would be refused its own topic (TopicAuthorizationFailedError)."""
    from kafka.admin import (ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType,
                             ResourcePatternFilter, ResourceType)

    every_acl = ACLFilter(None, None, ACLOperation.ANY, ACLPermissionType.ANY,
                          ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY))
    deadline = time.monotonic() + timeout_s
    while True:
        pending = set(acls) - set(admin.describe_acls(every_acl)[0])
        if not pending:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the Kafka broker still does not enforce {len(pending)} ACLs after {timeout_s:.0f} s, "
                               f"e.g. {next(iter(pending))}; check the broker's log")
        time.sleep(0.2)


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
    created = ensure_topics(settings, specs)
    report.append(f"kafka: {sum(len(s.topics) for s in specs)} topics present ({len(created)} created), "
                  "ACLs granted")
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

    admin = KafkaAdminClient(**settings.kafka("admin").python())
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
