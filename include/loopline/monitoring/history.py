"""The loop over time, read from what the stages record in PostgreSQL: what the loop view draws.

Spec-free on purpose: everything here comes from the tables the stages write (ingest,
contracts, training and the gate, the alias audit, scoring, drift, feedback, alerts), keyed
by the pipeline's name, so any pipeline's page works without its spec and a page for a year
of daily runs is a handful of indexed queries.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from loopline.core import db

RECENT_VALIDATIONS = 30  # the overview's contract pass rate is over this many latest dates

OVERVIEW = {
    "champion": """
        SELECT to_version AS version, changed_at AS since, reason, model_name FROM loopline.alias_history
         WHERE pipeline = %(p)s AND alias = 'champion' ORDER BY changed_at DESC, id DESC LIMIT 1""",
    "training": """
        SELECT DISTINCT ON (model_version) model_version AS version, primary_metric AS metric,
               candidate_score AS score, mlflow_run_id FROM loopline.training_runs
         WHERE pipeline = %(p)s AND model_version IS NOT NULL ORDER BY model_version, updated_at DESC""",
    "contracts": """
        SELECT count(*) AS validations, count(*) FILTER (WHERE success) AS passed FROM (
            SELECT success FROM loopline.contract_latest WHERE pipeline = %(p)s
             ORDER BY logical_date DESC LIMIT %(recent)s) AS recent""",
    "drift": """
        SELECT logical_date, last_date, max_psi, psi_threshold, drifted_features, model_version, report_uri
          FROM loopline.monitor_runs WHERE pipeline = %(p)s ORDER BY logical_date DESC LIMIT 1""",
    "realised": """
        SELECT logical_date, champion_version, metric, champion_score, previous_score, decision
          FROM loopline.feedback_checks WHERE pipeline = %(p)s AND champion_score IS NOT NULL
         ORDER BY logical_date DESC LIMIT 1""",
    "alert": """
        SELECT subject, logical_date, run_id, summary, sent_at FROM loopline.alerts
         WHERE pipeline = %(p)s ORDER BY sent_at DESC LIMIT 1""",
}

HISTORY = {
    # Rows per dataset and event date, of every recorded ingest batch: accepted and quarantined
    # at ingest.
    "ingest": """
        SELECT dataset, day::date AS logical_date, sum(accepted) AS accepted, sum(quarantined) AS quarantined FROM (
            SELECT dataset, a.key AS day, a.value::bigint AS accepted, 0 AS quarantined
              FROM loopline.ingest_batches, jsonb_each_text(accepted_by_date) a WHERE pipeline = %(p)s
            UNION ALL
            SELECT dataset, q.key, 0, q.value::bigint
              FROM loopline.ingest_batches, jsonb_each_text(quarantined_by_date) q WHERE pipeline = %(p)s) AS rows
         GROUP BY dataset, day ORDER BY dataset, day""",
    "validations": """
        SELECT logical_date, dataset, success, rows_in, rows_valid, rows_quarantined, report_uri, run_id
          FROM loopline.contract_latest WHERE pipeline = %(p)s ORDER BY logical_date, dataset""",
    # Each rule's results over the dates, of each date's latest validation, in one string per
    # rule ("<date>=<passed|row|warn|batch>[:<unexpected rows>],..."): a year of rules × dates
    # is thousands of cells, and a row each would cost more to fetch than to draw.
    "rules": """
        SELECT dataset, rule, string_agg(logical_date::text || '=' || CASE WHEN success THEN 'passed' ELSE severity END
                                         || coalesce(':' || unexpected_count, ''), ',' ORDER BY logical_date) AS cells
          FROM loopline.contract_results
         WHERE pipeline = %(p)s AND (dataset, logical_date, run_id) IN (
               SELECT DISTINCT ON (dataset, logical_date) dataset, logical_date, run_id
                 FROM loopline.contract_validations WHERE pipeline = %(p)s
                ORDER BY dataset, logical_date, updated_at DESC)
         GROUP BY dataset, rule ORDER BY dataset, rule""",
    "drift": """
        SELECT logical_date, feature, psi FROM loopline.drift_metrics WHERE pipeline = %(p)s
         ORDER BY feature, logical_date""",
    "monitor": """
        SELECT logical_date, last_date, model_version, rows_scored, max_psi, psi_threshold, drifted_features,
               retrain_requested, predictions, outcomes, report_uri, updated_at FROM loopline.monitor_runs
         WHERE pipeline = %(p)s ORDER BY logical_date""",
    "realised": """
        SELECT logical_date, champion_version, previous_version, labelled_rows, metric, champion_score,
               previous_score, tolerance, rolled_back, decision, slices FROM loopline.feedback_checks
         WHERE pipeline = %(p)s ORDER BY logical_date""",
    "training": """
        SELECT logical_date, dag_id, mlflow_run_id, model_version, primary_metric, candidate_score,
               champion_version, champion_score, promoted, decision, updated_at FROM loopline.training_runs
         WHERE pipeline = %(p)s ORDER BY updated_at""",
    "aliases": """
        SELECT model_name, alias, from_version, to_version, reason, dag_id, run_id, changed_at
          FROM loopline.alias_history WHERE pipeline = %(p)s ORDER BY changed_at, id""",
    "retrain_requests": """
        SELECT logical_date, reasons, requested, throttled, dag_id, run_id, requested_at, outcome, outcome_detail
          FROM loopline.retrain_requests WHERE pipeline = %(p)s ORDER BY logical_date""",
}


def overview(db_url: str, pipeline: str) -> dict[str, Any]:
    """One pipeline's line on the overview: champion, its training metric, recent contract pass
    rate, the last drift verdict, the last realised check and the last alert (None: not yet)."""
    found = {name: table.records() for name, table in
             _query_all(db_url, OVERVIEW, {"p": pipeline, "recent": RECENT_VALIDATIONS}).items()}
    champion, realised = _first(found["champion"]), _first(found["realised"])
    trained = {row["version"]: row for row in found["training"]}
    if champion:
        champion["training"] = trained.get(champion["version"])
    if realised:  # against the holdout score of the version that was judged, not today's champion
        realised["training"] = trained.get(realised["champion_version"])
    contracts = found["contracts"][0]
    return {"pipeline": pipeline, "champion": champion,
            "contracts": {**contracts, "recent": RECENT_VALIDATIONS,
                          "pass_rate": contracts["passed"] / contracts["validations"] if contracts["validations"]
                          else None},
            "drift": _first(found["drift"]), "realised": realised, "alert": _first(found["alert"])}


def pipeline_history(db_url: str, pipeline: str) -> dict[str, Any]:
    """Everything the pipeline page draws, each series a table ({"columns", "rows"}, compact
    for a year of dates) ordered by date, plus the model timeline."""
    found = _query_all(db_url, HISTORY, {"p": pipeline})
    aliases, requests = found.pop("aliases").records(), found.pop("retrain_requests").records()
    reported: dict[str, list[str]] = {}  # date -> the datasets whose contract report it has
    for validation in found["validations"].records():
        if validation["report_uri"]:
            reported.setdefault(validation["logical_date"], []).append(validation["dataset"])
    return {**{name: table.as_json() for name, table in found.items()}, "pipeline": pipeline,
            "model_name": aliases[-1]["model_name"] if aliases else None,
            "timeline": timeline(found["training"].records(), aliases, requests, reported)}


CONTRACT_REPORT = {
    "validation": """
        SELECT logical_date, last_date, run_id, success, rows_in, rows_valid, rows_quarantined, report_uri
          FROM loopline.contract_latest WHERE pipeline = %(p)s AND dataset = %(d)s AND logical_date = %(day)s""",
    "rules": """
        SELECT r.rule, r.severity, r.success, r.unexpected_count, r.error FROM loopline.contract_results r
          JOIN loopline.contract_latest v USING (pipeline, dataset, logical_date, run_id)
         WHERE r.pipeline = %(p)s AND r.dataset = %(d)s AND r.logical_date = %(day)s ORDER BY r.rule""",
}


def contract_outcome(db_url: str, pipeline: str, dataset: str, interval_first: date) -> dict[str, Any] | None:
    """The latest validation of the dataset's interval in Loopline's terms (None: never validated):
    `outcome` is "line stopped" (a batch rule failed), "rows quarantined" (row rules routed rows
    to quarantine and the line went on) or "passed"; with the rules behind it and the stored report."""
    found = _query_all(db_url, CONTRACT_REPORT, {"p": pipeline, "d": dataset, "day": interval_first})
    validation = _first(found["validation"].records())
    if validation is None:
        return None
    rules = found["rules"].records()
    failed = {severity: [r for r in rules if not r["success"] and r["severity"] == severity]
              for severity in ("batch", "row", "warn")}
    outcome = "line stopped" if failed["batch"] else "rows quarantined" if validation["rows_quarantined"] else "passed"
    return {**validation, "dataset": dataset, "outcome": outcome, "stopped_by": failed["batch"],
            "quarantined_by": failed["row"], "warnings": failed["warn"]}


def drift_report_uri(db_url: str, pipeline: str, interval_first: date) -> str | None:
    """Where the drift report of the interval starting on `interval_first` is stored."""
    with db.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT report_uri FROM loopline.monitor_runs WHERE pipeline = %s AND logical_date = %s",
                    (pipeline, interval_first))
        found = cur.fetchone()
    return found[0] if found else None


def timeline(training: list[dict], aliases: list[dict], requests: list[dict],
             reported: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Each version's registration and gate decision (with the contract reports of the data it
    was judged on, `reported`: date -> datasets), every move of the champion alias (promotion,
    rollback by hand or automatic, with its reason) and every retraining request (its reasons,
    what was throttled and why, and what the retrain came to), oldest first."""
    events = [{"at": run["updated_at"], "kind": "gate", "version": run["model_version"],
               "logical_date": run["logical_date"], "promoted": run["promoted"], "text": run["decision"],
               "mlflow_run_id": run["mlflow_run_id"], "dag_id": run["dag_id"],
               "data_docs": reported.get(run["logical_date"], [])} for run in training]
    events += [{"at": move["changed_at"], "kind": _alias_kind(move), "version": move["to_version"],
                "alias": move["alias"], "from_version": move["from_version"], "text": move["reason"],
                "dag_id": move["dag_id"], "run_id": move["run_id"], "model_name": move["model_name"]}
               for move in aliases if move["alias"] == "champion"]
    events += [{"at": asked["requested_at"], "kind": "retrain request" if asked["requested"] else "retrain throttled",
                "logical_date": asked["logical_date"], "dag_id": asked["dag_id"], "run_id": asked["run_id"],
                "text": _request_text(asked)} for asked in requests]
    return sorted(events, key=lambda event: event["at"])


def _request_text(asked: dict) -> str:
    """A retraining request as the timeline states it: each reason, throttled or not, and the outcome."""
    held = {t["kind"]: t["why"] for t in asked["throttled"]}
    parts = [f"{r['kind']}: {r['detail']}" + (f" (throttled: {held[r['kind']]})" if r["kind"] in held else "")
             for r in asked["reasons"]]
    if asked["requested"]:
        parts.append(f"retrain: {asked['outcome']} ({asked['outcome_detail']})" if asked["outcome"]
                     else "retrain: not finished")
    return "; ".join(parts)


def _alias_kind(move: dict) -> str:
    """What moved the champion alias (loopline.models.aliases writes these reasons)."""
    if move["reason"].startswith("rollback: automatic"):
        return "automatic rollback"
    return "rollback by hand" if move["reason"].startswith("rollback:") else "promotion"


@dataclass(frozen=True)
class Table:
    """A query's result as a result set: column names once, then rows of values."""
    columns: list[str]
    rows: list[list[Any]]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row)) for row in self.rows]

    def as_json(self) -> dict[str, list]:
        return {"columns": self.columns, "rows": self.rows}


# PostgreSQL types whose Python values JSON cannot hold as they are: date, timestamp,
# timestamptz (to ISO strings) and numeric (sums of bigints: to numbers).
CONVERTED_TYPES = {1082, 1114, 1184, 1700}


def _query_all(db_url: str, queries: dict[str, str], params: dict[str, Any]) -> dict[str, Table]:
    tables = {}
    with db.connect(db_url) as conn, conn.cursor() as cur:
        for name, sql in queries.items():
            cur.execute(sql, params)
            convert = [i for i, column in enumerate(cur.description) if column.type_code in CONVERTED_TYPES]
            rows = [list(row) for row in cur.fetchall()]
            for row in rows:  # only the columns that need it: a year of rule results is many rows
                for i in convert:
                    row[i] = _json_value(row[i])
            tables[name] = Table([column.name for column in cur.description], rows)
    return tables


def _json_value(value: Any) -> Any:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _first(rows: list[dict]) -> dict | None:
    return rows[0] if rows else None
