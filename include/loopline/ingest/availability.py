"""Is there enough new data for a run to be worth starting? (What the ingest sensor asks.)

A run for an interval of dates may proceed when its sources hold at least
`ingest.min_new_records` records not ingested yet (Kafka: log end minus the last recorded
batch end, per partition; PostgreSQL: rows above the last watermark; files: new files, each
counted as one), or when the interval's partitions of the sources already have rows (an
earlier run, e.g. a backfill, ingested them).
"""
from __future__ import annotations

from dataclasses import dataclass

from loopline.core import db
from loopline.core.interval import Interval
from loopline.core.pipeline import Pipeline
from loopline.sources.kafka_offsets import log_range, unread


@dataclass(frozen=True)
class DataStatus:
    interval: str
    unread: dict[str, int]  # source name -> records not ingested yet
    rows_already_ingested: int  # rows of the sources already in the interval's partitions
    min_new_records: int

    @property
    def ready(self) -> bool:
        return sum(self.unread.values()) >= self.min_new_records or self.rows_already_ingested > 0

    def describe(self) -> str:
        backlog = ", ".join(f"{name}: {n}" for name, n in self.unread.items()) or "no sources"
        return (f"{self.interval}: unread records {backlog} (need {self.min_new_records}); "
                f"{self.rows_already_ingested} rows of the interval already ingested")


def _consumed_until(conn, pipeline: str, dataset: str) -> dict[str, int]:
    rows = db.fetch_all(conn, """
        SELECT o.key AS partition, max((o.value->>1)::bigint) AS end_offset
          FROM loopline.ingest_batches b, jsonb_each(b.offsets) o
         WHERE b.pipeline = %s AND b.dataset = %s GROUP BY o.key""", (pipeline, dataset))
    return {r["partition"]: r["end_offset"] for r in rows}


def _rows_in(conn, pipeline: str, dataset: str, interval: Interval) -> int:
    rows = db.fetch_all(conn, """
        SELECT coalesce(sum(d.value::bigint), 0) AS n FROM loopline.ingest_batches b, jsonb_each_text(b.accepted_by_date) d
         WHERE b.pipeline = %s AND b.dataset = %s AND d.key::date BETWEEN %s AND %s""",
                        (pipeline, dataset, interval.first, interval.last))
    return int(rows[0]["n"])


def data_status(p: Pipeline, interval: Interval) -> DataStatus:
    """Backlog per Kafka source and what D's partition already holds."""
    from loopline.ingest.batch_sources import files_backlog, postgres_backlog

    kafka = p.settings.kafka("ingest")
    with db.connect(p.settings.db_url) as conn:
        backlog = {}
        for name, source in p.spec.sources.items():
            if source.kind == "kafka":
                beginning, end = log_range(kafka, source.topic)
                backlog[name] = unread(end, _consumed_until(conn, p.spec.name, source.dataset), beginning)
        already = sum(_rows_in(conn, p.spec.name, s.dataset, interval) for s in p.spec.sources.values())
    for name, source in p.spec.sources.items():
        if source.kind == "postgres":
            backlog[name] = postgres_backlog(p, source)
        elif source.kind == "files":
            backlog[name] = files_backlog(p, source)
    return DataStatus(str(interval), backlog, already, p.spec.ingest.min_new_records)
