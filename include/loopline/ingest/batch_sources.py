"""Silos beyond Kafka: a PostgreSQL table read by a watermark column, and JSON-lines files
landing under a prefix of a storage tier. Same parsing, bronze, quarantine and records as
Kafka (loopline.ingest.landing); only what counts as "new" differs.

- postgres: rows with `low < watermark <= high`, where low is the previous batch's high and
  high is max(watermark) when the batch is planned. The watermark must only grow (a sequence,
  or a commit timestamp set by the database).
- files: every file under the landing prefix not ingested before; each file is ingested once
  (loopline.ingested_files). A record's coordinates are (file, line number).

A batch is planned once per logical date and recorded with its range; rerunning the date
re-reads exactly that range into the same `ingest_batch` directories.
"""
from __future__ import annotations

from datetime import date

from loopline.core import db
from loopline.core.pipeline import Pipeline
from loopline.core.spec import Source
from loopline.core.storage import DatasetLocation
from loopline.ingest.landing import land
from loopline.ingest.parsing import classify
from loopline.ingest.streaming import IngestRun, landing_target, run_summary

FILE_COLUMNS = "key binary, value binary"


def _plan(conn, pipeline: str, source: Source, logical_date: date) -> tuple[int, dict | None]:
    """Lock the dataset against concurrent ingests (until the transaction ends) and return the
    date's batch id and, when the date ran before, the range it recorded (None: plan anew)."""
    db.lock_until_commit(conn, db.ingest_lock(pipeline, source.dataset))
    rows = db.fetch_all(conn, "SELECT batch_id, offsets FROM loopline.ingest_batches WHERE pipeline=%s AND dataset=%s "
                              "AND logical_date=%s", (pipeline, source.dataset, logical_date))
    if rows:
        return rows[0]["batch_id"], rows[0]["offsets"]
    rows = db.fetch_all(conn, "SELECT coalesce(max(batch_id) + 1, 0) AS n FROM loopline.ingest_batches "
                              "WHERE pipeline=%s AND dataset=%s", (pipeline, source.dataset))
    return int(rows[0]["n"]), None


# --- PostgreSQL ------------------------------------------------------------------------

def _source_db_url(source: Source) -> str:
    """The source database's URL, from the environment variable the spec names (no secrets in specs)."""
    from loopline.core.config import require_env

    return require_env(source.connection_env)


def _previous_high(conn, pipeline: str, source: Source) -> str | None:
    rows = db.fetch_all(conn, """
        SELECT offsets->'watermark'->>1 AS high FROM loopline.ingest_batches
         WHERE pipeline=%s AND dataset=%s ORDER BY batch_id DESC LIMIT 1""", (pipeline, source.dataset))
    return rows[0]["high"] if rows else None


def _table(source: Source):
    """The source table as a quoted identifier (`schema.table` -> "schema"."table")."""
    from psycopg2 import sql

    return sql.Identifier(*source.table.split("."))


def _range_query(cur, source: Source, low: str | None, high: str, batch_id: int) -> str:
    """The rows of (low, high] as (key, value=row JSON, timestamp, coordinates): a row's
    coordinates are (table, batch id, its position in the batch by watermark and key)."""
    from psycopg2 import sql

    watermark, key = sql.Identifier(source.watermark), sql.Identifier(source.schema.key)
    where = sql.SQL("t.{w} <= %(high)s").format(w=watermark)
    if low is not None:
        where = sql.SQL("{} AND t.{w} > %(low)s").format(where, w=watermark)
    query = sql.SQL("""
        SELECT convert_to(t.{key}::text, 'UTF8') AS key,
               convert_to(row_to_json(t)::text, 'UTF8') AS value,
               now() AS timestamp, %(table)s AS source, %(batch)s AS source_partition,
               row_number() OVER (ORDER BY t.{watermark}, t.{key}) - 1 AS source_offset
          FROM {table} t WHERE {where}""").format(key=key, watermark=watermark, table=_table(source), where=where)
    return cur.mogrify(query, {"low": low, "high": high, "table": source.table, "batch": batch_id}).decode()


def postgres_backlog(p: Pipeline, source: Source) -> int:
    """Rows above the last ingested watermark."""
    from psycopg2 import sql

    with db.connect(p.settings.db_url) as conn:
        low = _previous_high(conn, p.spec.name, source)
    with db.connect(_source_db_url(source)) as conn, conn.cursor() as cur:
        query = sql.SQL("SELECT count(*) FROM {}").format(_table(source))
        if low is not None:
            query = sql.SQL("{} WHERE {} > %s").format(query, sql.Identifier(source.watermark))
        cur.execute(query, (low,) if low is not None else ())
        return cur.fetchone()[0]


def ingest_postgres(spark, p: Pipeline, source: Source, run_id: str, logical_date: date) -> IngestRun:
    from psycopg2 import sql

    with db.connect(p.settings.db_url) as conn:
        batch_id, recorded = _plan(conn, p.spec.name, source, logical_date)
        low, high = recorded["watermark"] if recorded else (_previous_high(conn, p.spec.name, source), None)
        with db.connect(_source_db_url(source)) as source_conn, source_conn.cursor() as cur:
            if high is None:
                cur.execute(sql.SQL("SELECT max({})::text FROM {}").format(sql.Identifier(source.watermark),
                                                                          _table(source)))
                high = cur.fetchone()[0]
            query = _range_query(cur, source, low, high, batch_id) if high is not None else None
            if query:
                cur.execute(f"SELECT count(*) FROM ({query}) q")
            expected = cur.fetchone()[0] if query else 0
        if expected:
            raw = spark.read.format("jdbc").options(**db.jdbc_options(_source_db_url(source)), query=query).load()
            classified = classify(raw, source.versions, p.spec.ingest.max_record_bytes, keyed=False)
            land(classified, batch_id, landing_target(p, source, run_id, logical_date), expected,
                 {"watermark": [low, high]})
        return run_summary(conn, p.spec.name, source.dataset, run_id, logical_date)


# --- files -----------------------------------------------------------------------------

def _landing(p: Pipeline, source: Source) -> DatasetLocation:
    return DatasetLocation(p.lake.tiers[source.landing_tier], source.landing_prefix)


def _new_files(conn, p: Pipeline, source: Source) -> dict[str, int]:
    """URI -> size of landed files not ingested yet."""
    import pyarrow.fs as pafs

    landing = _landing(p, source)
    selector = pafs.FileSelector(landing.arrow_path, recursive=True, allow_not_found=True)
    landed = {}
    for info in landing.filesystem().get_file_info(selector):
        name = info.path.rsplit("/", 1)[-1]
        if info.type == pafs.FileType.File and name[:1] not in "._":
            landed[landing.tier.spark_uri(info.path[len(landing.tier.root) + 1:])] = info.size
    done = {r["path"] for r in db.fetch_all(conn, "SELECT path FROM loopline.ingested_files WHERE pipeline=%s "
                                                  "AND dataset=%s", (p.spec.name, source.dataset))}
    return {uri: size for uri, size in sorted(landed.items()) if uri not in done}


def _line_count(p: Pipeline, source: Source, uris: list[str]) -> int:
    """Lines in the files, counted by reading them here (independently of Spark)."""
    landing = _landing(p, source)
    filesystem, total = landing.filesystem(), 0
    for uri in uris:
        with filesystem.open_input_stream(landing.tier.arrow_path(uri[len(landing.tier.spark_uri("")):])) as stream:
            content = stream.read()
        total += content.count(b"\n") + (0 if content.endswith(b"\n") or not content else 1)
    return total


def _file_lines(spark, uris: list[str]):
    """One row per line: (key=null, value, timestamp=file mtime, file, 0, line number)."""
    from pyspark.sql import functions as F

    files = spark.read.text(uris, wholetext=True).select(
        "value", F.col("_metadata.file_path").alias("source"),
        F.col("_metadata.file_modification_time").alias("timestamp"))
    lines = F.split(F.regexp_replace("value", r"\n$", ""), "\n")
    return files.select(
        F.lit(None).cast("binary").alias("key"), F.posexplode(lines).alias("source_offset", "line"), "source",
        "timestamp",
    ).select("key", F.col("line").cast("binary").alias("value"), "timestamp", "source",
             F.lit(0).alias("source_partition"), F.col("source_offset").cast("long"))


def files_backlog(p: Pipeline, source: Source) -> int:
    with db.connect(p.settings.db_url) as conn:
        return len(_new_files(conn, p, source))


def ingest_files(spark, p: Pipeline, source: Source, run_id: str, logical_date: date) -> IngestRun:
    with db.connect(p.settings.db_url) as conn:
        batch_id, recorded = _plan(conn, p.spec.name, source, logical_date)
        files = recorded["files"] if recorded else _new_files(conn, p, source)
        if files:
            uris = sorted(files)
            classified = classify(_file_lines(spark, uris), source.versions, p.spec.ingest.max_record_bytes, keyed=False)
            land(classified, batch_id, landing_target(p, source, run_id, logical_date), _line_count(p, source, uris),
                 {"files": files})
            for uri, size in files.items():
                db.upsert(conn, "loopline.ingested_files", {"pipeline": p.spec.name, "dataset": source.dataset,
                                                            "path": uri, "size": size, "batch_id": batch_id},
                          key=["pipeline", "dataset", "path"])
        return run_summary(conn, p.spec.name, source.dataset, run_id, logical_date)


def ingest_batch_source(spark, p: Pipeline, source: Source, run_id: str, logical_date: date) -> IngestRun:
    return {"postgres": ingest_postgres, "files": ingest_files}[source.kind](spark, p, source, run_id, logical_date)
