"""The `loopline` PostgreSQL schema: run bookkeeping, contract results, predictions, drift.

Every write is an upsert on the row's natural key (pipeline, dataset/feature, logical date…),
so rerunning a logical date replaces its rows instead of adding to them. The schema evolves
by numbered migrations (MIGRATIONS); `ensure_schema` applies the ones a database lacks.
"""
from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

import psycopg2
import psycopg2.extras
import psycopg2.sql

INITIAL_SCHEMA = """
CREATE SCHEMA IF NOT EXISTS loopline;

CREATE TABLE IF NOT EXISTS loopline.ingest_runs (
    pipeline      text        NOT NULL,
    dataset       text        NOT NULL,
    logical_date  date        NOT NULL,
    run_id        text        NOT NULL,
    topic         text        NOT NULL,
    offsets       jsonb       NOT NULL,   -- {"<partition>": [start, end)} consumed by this date
    consumed      bigint      NOT NULL,
    accepted      bigint      NOT NULL,
    quarantined   bigint      NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, dataset, logical_date)
);

CREATE TABLE IF NOT EXISTS loopline.contract_results (
    pipeline      text        NOT NULL,
    dataset       text        NOT NULL,
    logical_date  date        NOT NULL,
    run_id        text        NOT NULL,
    suite         text        NOT NULL,
    success       boolean     NOT NULL,
    evaluated     integer     NOT NULL,
    failed        jsonb       NOT NULL,   -- [{"expectation": ..., "column": ..., "observed": ...}]
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, dataset, logical_date)
);

CREATE TABLE IF NOT EXISTS loopline.training_runs (
    pipeline         text        NOT NULL,
    logical_date     date        NOT NULL,
    dag_id           text        NOT NULL,
    mlflow_run_id    text        NOT NULL,
    model_version    integer,
    primary_metric   text        NOT NULL,
    candidate_score  double precision NOT NULL,
    champion_version integer,
    champion_score   double precision,
    promoted         boolean     NOT NULL,
    decision         text        NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, logical_date, dag_id)
);

CREATE TABLE IF NOT EXISTS loopline.score_runs (
    pipeline         text        NOT NULL,
    logical_date     date        NOT NULL,
    model_version    integer     NOT NULL,   -- fixed at the date's first scoring; reruns reuse it
    rows_scored      bigint      NOT NULL,
    predictions_uri  text        NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, logical_date)
);

CREATE TABLE IF NOT EXISTS loopline.predictions (
    prediction_id      text        PRIMARY KEY,   -- <pipeline>:<transaction_id>
    pipeline           text        NOT NULL,
    score_date         date        NOT NULL,
    transaction_id     text        NOT NULL,
    fraud_probability  double precision NOT NULL,
    model_version      integer     NOT NULL,
    scored_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS predictions_by_date ON loopline.predictions (pipeline, score_date);

CREATE TABLE IF NOT EXISTS loopline.drift_metrics (
    pipeline       text        NOT NULL,
    logical_date   date        NOT NULL,
    feature        text        NOT NULL,
    psi            double precision NOT NULL,
    model_version  integer     NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, logical_date, feature)
);

CREATE TABLE IF NOT EXISTS loopline.monitor_runs (
    pipeline            text        NOT NULL,
    logical_date        date        NOT NULL,
    model_version       integer     NOT NULL,
    rows_scored         bigint      NOT NULL,
    max_psi             double precision NOT NULL,
    drifted_features    jsonb       NOT NULL,
    retrain_requested   boolean     NOT NULL,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, logical_date)
);
"""

STREAMING_INGEST = """
-- v1 recorded one Kafka offset window per day; ingestion now runs in micro-batches.
DROP TABLE loopline.ingest_runs;

CREATE TABLE loopline.ingest_batches (
    pipeline             text        NOT NULL,
    dataset              text        NOT NULL,
    batch_id             bigint      NOT NULL,   -- Spark micro-batch id (Kafka) or per-dataset sequence
    run_id               text        NOT NULL,   -- the run that (last) wrote it
    logical_date         date        NOT NULL,
    source               text        NOT NULL,   -- topic, schema.table or landing prefix
    offsets              jsonb       NOT NULL,   -- kafka {"<partition>": [start, end)}; postgres {"watermark": [low, high]}; files {"files": [...]}
    consumed             bigint      NOT NULL,
    accepted             bigint      NOT NULL,
    quarantined          bigint      NOT NULL,
    accepted_by_date     jsonb       NOT NULL,   -- {"<event date>": rows}
    quarantined_by_date  jsonb       NOT NULL,
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, dataset, batch_id)
);
CREATE INDEX ingest_batches_by_run ON loopline.ingest_batches (pipeline, dataset, run_id);

CREATE TABLE loopline.ingest_runs (
    pipeline      text        NOT NULL,
    dataset       text        NOT NULL,
    run_id        text        NOT NULL,
    logical_date  date        NOT NULL,
    batches       integer     NOT NULL,
    consumed      bigint      NOT NULL,
    accepted      bigint      NOT NULL,
    quarantined   bigint      NOT NULL,
    late          bigint      NOT NULL,   -- accepted rows whose event date is before the logical date
    reconciled    boolean     NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, dataset, run_id)
);

CREATE TABLE loopline.ingested_files (
    pipeline    text        NOT NULL,
    dataset     text        NOT NULL,
    path        text        NOT NULL,
    size        bigint      NOT NULL,
    batch_id    bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, dataset, path)
);
"""

CONTRACT_EVIDENCE = """
-- v1 kept one summary row per date; contracts now keep every validation and every rule's result.
DROP TABLE loopline.contract_results;

CREATE TABLE loopline.contract_validations (
    pipeline          text        NOT NULL,
    dataset           text        NOT NULL,   -- the bronze dataset validated
    logical_date      date        NOT NULL,
    run_id            text        NOT NULL,
    suite             text        NOT NULL,
    success           boolean     NOT NULL,   -- false = the line stopped for this date
    rows_in           bigint      NOT NULL,
    rows_valid        bigint      NOT NULL,
    rows_quarantined  bigint      NOT NULL,
    report_uri        text,                   -- GX Data Docs page on the contract_reports tier
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, dataset, logical_date, run_id)
);

CREATE TABLE loopline.contract_results (
    pipeline          text        NOT NULL,
    dataset           text        NOT NULL,
    logical_date      date        NOT NULL,
    run_id            text        NOT NULL,
    rule              text        NOT NULL,   -- meta.name in the suite
    severity          text        NOT NULL,   -- row | batch | warn
    expectation       text        NOT NULL,
    column_name       text,
    success           boolean     NOT NULL,
    observed_value    jsonb,
    unexpected_count  bigint,
    element_count     bigint,
    sample            jsonb,                  -- a few unexpected values
    error             text,                   -- the rule could not be evaluated
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, dataset, logical_date, run_id, rule)
);

-- The latest validation of each date: what quality-trend queries usually want.
CREATE VIEW loopline.contract_latest AS
SELECT DISTINCT ON (pipeline, dataset, logical_date) *
  FROM loopline.contract_validations
 ORDER BY pipeline, dataset, logical_date, updated_at DESC;
"""

ALIAS_HISTORY = """
CREATE TABLE loopline.alias_history (
    id            bigserial   PRIMARY KEY,
    pipeline      text        NOT NULL,
    model_name    text        NOT NULL,
    alias         text        NOT NULL,   -- champion | challenger | previous_champion
    from_version  integer,                -- null: the alias did not exist yet
    to_version    integer     NOT NULL,
    reason        text        NOT NULL,   -- the gate decision, "rollback: <why>", ...
    dag_id        text,                   -- the DAG and run that moved it (null: CLI)
    run_id        text,
    changed_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX alias_history_by_alias ON loopline.alias_history (model_name, alias, changed_at);

-- Append-only: rows are never changed; deleting needs `SET LOCAL loopline.purge = 'on'`
-- (only loopline.ops.bootstrap.remove_pipeline_data does, when a pipeline is removed).
CREATE FUNCTION loopline.alias_history_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('loopline.purge', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'loopline.alias_history is append-only (% refused)', TG_OP;
END $$;
CREATE TRIGGER alias_history_append_only BEFORE UPDATE OR DELETE ON loopline.alias_history
    FOR EACH ROW EXECUTE FUNCTION loopline.alias_history_append_only();
"""

GATE_REPORT = """
-- The whole gate evaluation per candidate: scores, slices, smoke test (also in its MLflow run).
ALTER TABLE loopline.training_runs ADD COLUMN gate_report jsonb;
"""

PUBLISHED_PREDICTIONS = """
-- Rows of the date last published to the predictions topic (null: not published yet).
ALTER TABLE loopline.score_runs ADD COLUMN published_rows bigint;
"""

FEEDBACK_CHECKS = """
-- One realised-performance check per date (loopline.monitoring.feedback): champion vs previous champion
-- on the same labelled predictions, and whether it rolled back.
CREATE TABLE loopline.feedback_checks (
    pipeline          text             NOT NULL,
    logical_date      date             NOT NULL,
    champion_version  integer,
    previous_version  integer,
    labelled_rows     bigint           NOT NULL,
    metric            text             NOT NULL,
    champion_score    double precision,            -- null: not judged
    previous_score    double precision,
    tolerance         double precision NOT NULL,
    rolled_back       boolean          NOT NULL,
    decision          text             NOT NULL,
    dag_id            text,
    run_id            text,
    updated_at        timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, logical_date)
);
"""

GENERIC_PREDICTIONS = """
-- Predictions of any task type for any pipeline, in one table: a pipeline column, the entity's
-- key as text, its event time, the task type and a numeric prediction (a probability for
-- binary tasks, a value for regression). One table (not one per pipeline) keeps every
-- consumer's query and index the same and needs no DDL when a pipeline is added.
-- Rows written before this migration were all binary probabilities; they keep their values.
ALTER TABLE loopline.predictions RENAME COLUMN transaction_id TO entity_key;
ALTER TABLE loopline.predictions RENAME COLUMN fraud_probability TO prediction;
ALTER TABLE loopline.predictions ADD COLUMN event_time timestamptz;
ALTER TABLE loopline.predictions ADD COLUMN task text NOT NULL DEFAULT 'binary';
ALTER TABLE loopline.predictions ALTER COLUMN task DROP DEFAULT;
"""

REPLAYS = """
-- How far `loopline replay` got with each file (loopline.sources.replay): a rerun resumes after it.
CREATE TABLE loopline.replays (
    pipeline      text        NOT NULL,
    file_sha256   text        NOT NULL,
    file_name     text        NOT NULL,
    sent_through  jsonb       NOT NULL,   -- [event time, key, kind] of the last record sent and flushed
    records_sent  bigint      NOT NULL,
    end_offsets   jsonb       NOT NULL,   -- {"<topic>": {"<partition>": end offset}} after that flush
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, file_sha256)
);
"""

CONTRACT_INTERVALS = """
-- A contract judges a run's batch: the rows of its interval's dates (one date for a daily
-- pipeline). Results stay under the interval's first date; last_date closes the interval.
ALTER TABLE loopline.contract_validations ADD COLUMN last_date date;
UPDATE loopline.contract_validations SET last_date = logical_date;
ALTER TABLE loopline.contract_validations ALTER COLUMN last_date SET NOT NULL;
CREATE OR REPLACE VIEW loopline.contract_latest AS
SELECT DISTINCT ON (pipeline, dataset, logical_date) *
  FROM loopline.contract_validations
 ORDER BY pipeline, dataset, logical_date, updated_at DESC;
"""

DRIFT_INTERVALS = """
-- Drift is measured per schedule interval (a date of a daily pipeline, a month of a monthly
-- one): a day of a monthly pipeline holds too few rows for a PSI. Rows stay under the
-- interval's first date; last_date closes it.
ALTER TABLE loopline.drift_metrics ADD COLUMN last_date date;
UPDATE loopline.drift_metrics SET last_date = logical_date;
ALTER TABLE loopline.drift_metrics ALTER COLUMN last_date SET NOT NULL;
ALTER TABLE loopline.monitor_runs ADD COLUMN last_date date;
UPDATE loopline.monitor_runs SET last_date = logical_date;
ALTER TABLE loopline.monitor_runs ALTER COLUMN last_date SET NOT NULL;
"""

STAGING_SCHEMA = """
-- Tasks stage bulk writes (Spark's JDBC writer creates its table) in a schema of their own:
-- the application role may create tables there, and nowhere else.
CREATE SCHEMA loopline_staging;
"""

MODEL_DIGESTS = """
-- SHA-256 of every artifact file of a registered model version, recorded at registration
-- (loopline.models.store): every load checks the files against it before reading them.
CREATE TABLE loopline.model_digests (
    pipeline      text        NOT NULL,
    model_name    text        NOT NULL,
    version       integer     NOT NULL,
    files         jsonb       NOT NULL,   -- {"<path in the model folder>": "<sha256>"}
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_name, version)
);
"""

SKIPPED_OFFSETS = """
-- Kafka offsets of a batch that hold no record to read (transaction markers, aborted records).
ALTER TABLE loopline.ingest_batches ADD COLUMN skipped bigint NOT NULL DEFAULT 0;
"""

UNKNOWN_FIELDS = """
-- Accepted records that carried fields their schema does not declare, per field (the schema's
-- unknown_fields policy `report`): {"<field>": records}.
ALTER TABLE loopline.ingest_batches ADD COLUMN unknown_fields jsonb NOT NULL DEFAULT '{}';
ALTER TABLE loopline.ingest_runs ADD COLUMN unknown_fields jsonb NOT NULL DEFAULT '{}';
"""

PUBLISH_INTENTS = """
-- A predictions publish in flight (loopline.scoring.publish): its batch id, the topic's end
-- offsets before it, and the rows per date it sends; cleared once the outcome is recorded.
ALTER TABLE loopline.score_runs ADD COLUMN publish_batch text, ADD COLUMN publish_from jsonb,
                                ADD COLUMN publish_rows bigint;
"""

LOOP_VIEW = """
-- What the loop view (loopline.monitoring.history) draws without rescanning predictions: the
-- threshold each drift verdict was made against, the predictions' distribution per interval,
-- prediction and label drift, the interval's drift report, and every alert sent.
ALTER TABLE loopline.monitor_runs ADD COLUMN psi_threshold double precision,
                                  ADD COLUMN predictions jsonb,  -- {"rows", "mean", "quantiles": {"0.05": ...}}
                                  ADD COLUMN outcomes jsonb,     -- prediction_psi, labelled_rows, target_mean ...
                                  ADD COLUMN report_uri text;    -- the drift report on the drift_reports tier
CREATE TABLE loopline.alerts (
    id            bigserial   PRIMARY KEY,
    pipeline      text        NOT NULL,
    subject       text        NOT NULL,
    logical_date  text        NOT NULL,   -- the run's dates as the alert states them
    run_id        text        NOT NULL,
    summary       text        NOT NULL,
    channels      jsonb       NOT NULL,   -- one line per channel: sent, inactive, FAILED ...
    sent_at       timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX alerts_by_pipeline ON loopline.alerts (pipeline, sent_at);
"""

DECAY = """
-- Realised performance per critical slice (loopline.monitoring.feedback), and each nightly
-- run's retraining request (loopline.monitoring.retraining): the reasons its monitoring gave,
-- those it asked for and those it throttled, and what the retrain made of it.
ALTER TABLE loopline.feedback_checks ADD COLUMN slices jsonb;  -- field -> [{value, rows, champion, previous}]
CREATE TABLE loopline.retrain_requests (
    pipeline      text        NOT NULL,
    logical_date  date        NOT NULL,   -- the requesting run's last event date
    reasons       jsonb       NOT NULL,   -- [{"kind", "detail"}] the triggers that fired
    requested     jsonb       NOT NULL,   -- ["kind"] asked for (empty: every reason throttled)
    throttled     jsonb       NOT NULL,   -- [{"kind", "why"}]
    dag_id        text,
    run_id        text,
    requested_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    outcome       text,                   -- null while the retrain runs; promoted, rejected, no candidate, failed
    outcome_detail text,
    closed_at     timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, logical_date)
);
"""

NO_STAGING_SCHEMA = """
-- Scoring copies its rows into a temporary table of its own connection now (COPY from the
-- client, not Spark's JDBC writer), so the staging schema has no use.
DROP SCHEMA loopline_staging CASCADE;
"""

MIGRATIONS = [INITIAL_SCHEMA, STREAMING_INGEST, CONTRACT_EVIDENCE, ALIAS_HISTORY, GATE_REPORT, PUBLISHED_PREDICTIONS,
              FEEDBACK_CHECKS, GENERIC_PREDICTIONS, REPLAYS, CONTRACT_INTERVALS, DRIFT_INTERVALS,
              STAGING_SCHEMA, MODEL_DIGESTS, SKIPPED_OFFSETS, UNKNOWN_FIELDS,
              PUBLISH_INTENTS, LOOP_VIEW, DECAY, NO_STAGING_SCHEMA]  # append only: version = position + 1


@contextmanager
def connect(db_url: str) -> Iterator[psycopg2.extensions.connection]:
    """A connection that commits on success and rolls back on error."""
    conn = psycopg2.connect(db_url)
    try:
        with conn:
            yield conn
    finally:
        conn.close()


# What the pipeline's tasks may do (least privilege): read and write the tables, never change
# the schema, never rewrite the alias audit or a model's recorded digests, and create only
# temporary tables (granted on the database by the stack).
APPLICATION_GRANTS = """
GRANT USAGE ON SCHEMA loopline TO {role};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA loopline TO {role};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA loopline TO {role};
REVOKE UPDATE, DELETE, TRUNCATE ON loopline.alias_history, loopline.model_digests FROM {role};
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON loopline.schema_migrations FROM {role};
"""


@contextmanager
def session_lock(db_url: str, name: str) -> Iterator[None]:
    """Wait for, then hold, the advisory lock `name` for the block, on a connection of its own
    (so the block's own transactions commit as they go; a killed holder's lock goes with its
    connection)."""
    conn = psycopg2.connect(db_url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(hashtext(%s))", (name,))
        yield
    finally:
        conn.close()


def lock_until_commit(conn, name: str) -> None:
    """Wait for, then hold, the advisory lock `name` until the connection's transaction ends
    (a killed holder's connection drops, and the lock with it)."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (name,))


def ingest_lock(pipeline: str, dataset: str) -> str:
    """The lock that serializes ingests of one dataset, whatever the source kind."""
    return f"ingest:{pipeline}:{dataset}"


def ensure_schema(admin_url: str, application_role: str | None = None) -> list[int]:
    """Apply the migrations this database has not seen, in order, as the schema's owner, then
    grant the application role what the tasks need (every time: new tables get their grants);
    return the versions applied."""
    with connect(admin_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('loopline.schema'))")
        cur.execute("CREATE SCHEMA IF NOT EXISTS loopline; CREATE TABLE IF NOT EXISTS loopline.schema_migrations "
                    "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
        cur.execute("SELECT coalesce(max(version), 0) FROM loopline.schema_migrations")
        current = cur.fetchone()[0]
        applied = []
        for version, ddl in enumerate(MIGRATIONS, start=1):
            if version > current:
                cur.execute(ddl)
                cur.execute("INSERT INTO loopline.schema_migrations (version) VALUES (%s)", (version,))
                applied.append(version)
        cur.execute("SELECT current_user")
        if application_role and application_role != cur.fetchone()[0]:
            cur.execute(psycopg2.sql.SQL(APPLICATION_GRANTS).format(role=psycopg2.sql.Identifier(application_role)))
        return applied


def as_json(value: Any) -> psycopg2.extras.Json:
    """Any JSON value (also a bare number or string) for a jsonb column."""
    return psycopg2.extras.Json(value, dumps=_to_json)


def _adapt(value: Any) -> Any:
    """dicts and lists become jsonb; values JSON cannot encode (numpy, timestamps) as strings."""
    return as_json(value) if isinstance(value, (dict, list)) else value


def upsert(conn, table: str, row: Mapping[str, Any], key: Sequence[str]) -> None:
    """INSERT … ON CONFLICT (key) DO UPDATE: the idempotent write every task uses.

    The table must have an `updated_at` column; it is set to now() on every write.
    """
    columns = list(row)
    with conn.cursor() as cur:
        cur.execute(_upsert_sql(table, columns, key, f"({', '.join(['%s'] * len(columns))})"),
                    [_adapt(row[c]) for c in columns])


def upsert_rows(conn, table: str, rows: Sequence[Mapping[str, Any]], key: Sequence[str]) -> None:
    """`upsert` of several rows with the same columns (no two with the same key) in one
    statement: one round trip, not one per row."""
    if not rows:
        return
    columns = list(rows[0])
    with conn.cursor() as cur:
        psycopg2.extras.execute_values(cur, _upsert_sql(table, columns, key, "%s"),
                                       [[_adapt(row[c]) for c in columns] for row in rows], page_size=len(rows))


def _upsert_sql(table: str, columns: list[str], key: Sequence[str], values: str) -> str:
    updates = [c for c in columns if c not in key] + (["updated_at"] if "updated_at" not in columns else [])
    assignments = ", ".join(f"{c} = EXCLUDED.{c}" if c != "updated_at" else "updated_at = now()" for c in updates)
    return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values} "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {assignments}")


def jdbc_options(db_url: str) -> dict[str, str]:
    """Spark JDBC options for a libpq-style URL (postgresql://user:pw@host:port/db). The driver
    rewrites each batch of inserts into multi-row statements: a large write costs fewer round trips."""
    url = urlparse(db_url)
    return {"url": f"jdbc:postgresql://{url.hostname}:{url.port or 5432}{url.path}?reWriteBatchedInserts=true",
            "user": url.username or "", "password": url.password or "", "driver": "org.postgresql.Driver"}


def recorded_row(db_url: str, table: str, pipeline: str, logical_date: Any) -> dict[str, Any] | None:
    """What a stage recorded in `table` for the pipeline's date (None: nothing yet): how a rerun
    of the date finds the decision it must repeat."""
    with connect(db_url) as conn:
        rows = fetch_all(conn, f"SELECT * FROM {table} WHERE pipeline = %s AND logical_date = %s",
                         (pipeline, logical_date))
    return rows[0] if rows else None


def fetch_all(conn, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute(sql, params)
        return [dict(r) for r in cur.fetchall()]


def _to_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
