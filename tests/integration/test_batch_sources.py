"""Batch sources on the real services: a PostgreSQL table read by watermark and JSON-lines
files landing on the S3 tier. Same bronze/quarantine contract as Kafka; each row or file is
ingested once, and rerunning a date re-reads exactly its recorded range."""
from __future__ import annotations

import json
from collections import Counter
from datetime import date
from urllib.parse import urlparse

import pyarrow.dataset as ds
import pytest

from loopline.core import db
from loopline.core.interval import Interval
from loopline.core.pipeline import Pipeline
from loopline.core.storage import DatasetLocation
from loopline.ingest.streaming import ingest_source
from loopline.ingest.availability import data_status
from loopline.ops.bootstrap import admin_db_url

DAY = date(2026, 10, 1)
LABEL = {"transaction_id": "tx-1", "is_fraud": 0, "label_time": "2026-10-01T08:00:00+00:00",
         "label_source": "review", "schema_version": 1}


def _rows(location, columns):
    if not location.exists():
        return []
    dataset = ds.dataset(location.arrow_path, filesystem=location.filesystem(), format="parquet", partitioning="hive")
    return dataset.to_table(columns=columns).to_pylist() if dataset.schema.names else []


def _landed(p: Pipeline, dataset: str) -> tuple[list[dict], list[dict]]:
    coordinates = ["source", "source_partition", "source_offset"]
    return (_rows(p.lake.location(dataset), coordinates + ["date"]),
            _rows(p.lake.location("quarantine", subdir=dataset), coordinates + ["reject_reason"]))


@pytest.fixture(scope="module")
def pipeline(make_pipeline):
    import uuid

    table = f"public.reviews_{uuid.uuid4().hex[:8]}"
    name = make_pipeline(
        sources={
            "reviews": {"kind": "postgres", "table": table, "watermark": "updated_at", "schema": "label_v1",
                        "time_field": "label_time"},
            "partner": {"kind": "files", "landing_tier": "cloud", "landing_prefix": f"landing/{table}/partner",
                        "schema": "label_v1", "time_field": "label_time"},
        },
        storage={"bronze_reviews": {"tier": "onprem"}, "bronze_partner": {"tier": "onprem"},
                 "valid_reviews": {"tier": "onprem"}, "valid_partner": {"tier": "onprem"}},
        contracts={"bronze_reviews": {"suite": "card_labels_bronze", "valid_dataset": "valid_reviews"},
                   "bronze_partner": {"suite": "card_labels_bronze", "valid_dataset": "valid_partner"}},
    )
    p = Pipeline.load(name)
    # The table plays a source system's: another role owns it and lets the pipeline read it.
    with db.connect(admin_db_url()) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {table} (transaction_id text PRIMARY KEY, is_fraud int, label_time timestamptz, "
                    "label_source text, schema_version int, updated_at bigint NOT NULL)")
        cur.execute(f"GRANT SELECT ON {table} TO {urlparse(p.settings.db_url).username}")
    yield p
    with db.connect(admin_db_url()) as conn, conn.cursor() as cur:
        cur.execute(f"DROP TABLE {table}")
    cloud = p.lake.tiers["cloud"]
    landing = DatasetLocation(cloud, f"landing/{table}")
    if landing.exists():
        landing.filesystem().delete_dir(landing.arrow_path)


def _insert(p: Pipeline, rows: list[dict]) -> None:
    source = p.spec.sources["reviews"]
    with db.connect(admin_db_url()) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT coalesce(max(updated_at), 0) FROM {source.table}")
        watermark = cur.fetchone()[0]
        for i, row in enumerate(rows, start=1):
            cur.execute(f"INSERT INTO {source.table} VALUES (%(transaction_id)s, %(is_fraud)s, %(label_time)s, "
                        "%(label_source)s, %(schema_version)s, %(updated_at)s)", {**row, "updated_at": watermark + i})


def test_postgres_table_is_read_incrementally_by_watermark(pipeline):
    p, source = pipeline, pipeline.spec.sources["reviews"]
    spark = p.spark()
    good = [{**LABEL, "transaction_id": f"tx-{i}"} for i in range(10)]
    bad = [{**LABEL, "transaction_id": "tx-b1", "is_fraud": None},
           {**LABEL, "transaction_id": "tx-b2", "schema_version": 2},
           {**LABEL, "transaction_id": "tx-b3", "label_time": None}]
    _insert(p, good + bad)
    assert data_status(p, Interval.of_day(DAY)).unread["reviews"] == 13

    first = ingest_source(spark, p, source, "pg-1", DAY)
    assert (first.consumed, first.accepted, first.quarantined) == (13, 10, 3)
    again = ingest_source(spark, p, source, "pg-1-rerun", DAY)  # same date: same recorded range, same batch
    assert (again.consumed, again.accepted) == (13, 10)
    bronze, quarantine = _landed(p, source.dataset)
    assert len(bronze) == 10 and {r["date"] for r in bronze} == {DAY.isoformat()}
    assert Counter(q["reject_reason"] for q in quarantine) == {
        "null_field:is_fraud": 1, "unknown_schema_version": 1, "null_field:label_time": 1}

    _insert(p, [{**LABEL, "transaction_id": f"tx-new-{i}"} for i in range(5)])
    assert data_status(p, Interval.of_day(DAY)).unread["reviews"] == 5
    later = ingest_source(spark, p, source, "pg-2", date(2026, 10, 2))
    assert (later.consumed, later.accepted) == (5, 5)
    bronze, quarantine = _landed(p, source.dataset)
    coordinates = [(r["source"], r["source_partition"], r["source_offset"]) for r in bronze + quarantine]
    assert len(bronze) + len(quarantine) == 18 and len(set(coordinates)) == 18


def test_landed_files_are_each_ingested_once(pipeline):
    p, source = pipeline, pipeline.spec.sources["partner"]
    spark = p.spark()
    landing = p.lake.tiers["cloud"]
    filesystem = landing.arrow_filesystem()

    def land_file(name: str, lines: list[str]) -> None:
        path = landing.arrow_path(f"{source.landing_prefix}/{name}")
        with filesystem.open_output_stream(path) as out:
            out.write(("\n".join(lines) + "\n").encode())

    good = [json.dumps({**LABEL, "transaction_id": f"tx-f{i}"}) for i in range(7)]
    land_file("2026-10-01/a.jsonl", good[:4] + ["{not json"])
    land_file("2026-10-01/b.jsonl", good[4:] + [json.dumps({**LABEL, "is_fraud": "yes"})])
    assert data_status(p, Interval.of_day(DAY)).unread["partner"] == 2

    first = ingest_source(spark, p, source, "files-1", DAY)
    assert (first.consumed, first.accepted, first.quarantined) == (9, 7, 2)
    rerun = ingest_source(spark, p, source, "files-1-rerun", DAY)
    assert (rerun.consumed, rerun.accepted) == (9, 7)
    nothing_new = ingest_source(spark, p, source, "files-2", date(2026, 10, 2))
    assert nothing_new.consumed == 0

    land_file("2026-10-03/c.jsonl", [json.dumps({**LABEL, "transaction_id": "tx-c"})])
    third = ingest_source(spark, p, source, "files-3", date(2026, 10, 3))
    assert (third.consumed, third.accepted) == (1, 1)
    bronze, quarantine = _landed(p, source.dataset)
    assert Counter(q["reject_reason"] for q in quarantine) == {"not_json": 1, "wrong_type:is_fraud": 1}
    coordinates = [(r["source"], r["source_partition"], r["source_offset"]) for r in bronze + quarantine]
    assert len(coordinates) == 10 and len(set(coordinates)) == 10
    assert {r["source"].rsplit("/", 1)[-1] for r in bronze} == {"a.jsonl", "b.jsonl", "c.jsonl"}
