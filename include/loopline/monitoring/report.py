"""The nightly loop's per-day summary, read back from the `loopline` tables (not from logs).

Entities are the rows of the spec's entities source, labels those of its labels source
(when both are one source, the two columns count the same rows)."""
from __future__ import annotations

from loopline.core import db
from loopline.core.config import Settings
from loopline.core.spec import PipelineSpec

DAILY_SQL = """
WITH landed AS (  -- rows per event date, whichever run ingested them (late data included)
    SELECT b.dataset, d.key::date AS logical_date, sum(d.value::bigint) AS accepted, 0 AS quarantined
      FROM loopline.ingest_batches b, jsonb_each_text(b.accepted_by_date) d WHERE b.pipeline = %(p)s GROUP BY 1, 2
    UNION ALL
    SELECT b.dataset, d.key::date, 0, sum(d.value::bigint)
      FROM loopline.ingest_batches b, jsonb_each_text(b.quarantined_by_date) d WHERE b.pipeline = %(p)s GROUP BY 1, 2
), per_day AS (
    SELECT dataset, logical_date, sum(accepted) AS accepted, sum(quarantined) AS quarantined
      FROM landed GROUP BY 1, 2
), days AS (
    SELECT logical_date FROM per_day WHERE dataset = %(entity_dataset)s
    UNION SELECT logical_date FROM loopline.training_runs WHERE pipeline = %(p)s
)
SELECT d.logical_date,
       ev.accepted + ev.quarantined AS events_in, ev.accepted AS events_accepted, ev.quarantined AS events_quarantined,
       lb.accepted AS labels,
       cv.success AS contract_ok, cv.rows_quarantined AS contract_rejected,
       (SELECT count(*) FROM loopline.contract_results r
         WHERE (r.pipeline, r.dataset, r.logical_date, r.run_id) = (cv.pipeline, cv.dataset, cv.logical_date, cv.run_id)
           AND r.severity = 'batch' AND NOT r.success) AS contract_failed,
       (SELECT count(*) FROM loopline.predictions pr WHERE pr.pipeline = %(p)s AND pr.score_date = d.logical_date)
           AS predictions,
       mr.model_version AS scored_by, mr.max_psi, mr.drifted_features, mr.retrain_requested
  FROM days d
  LEFT JOIN per_day ev ON ev.dataset = %(entity_dataset)s AND ev.logical_date = d.logical_date
  LEFT JOIN per_day lb ON lb.dataset = %(label_dataset)s AND lb.logical_date = d.logical_date
  LEFT JOIN loopline.contract_latest cv ON cv.pipeline = %(p)s AND cv.dataset = %(entity_dataset)s
       AND d.logical_date BETWEEN cv.logical_date AND cv.last_date
  LEFT JOIN loopline.monitor_runs mr ON mr.pipeline = %(p)s
       AND d.logical_date BETWEEN mr.logical_date AND mr.last_date
 ORDER BY d.logical_date
"""
TRAINING_SQL = """
SELECT logical_date, dag_id, model_version, primary_metric, candidate_score, champion_version, champion_score,
       promoted, decision
  FROM loopline.training_runs WHERE pipeline = %(p)s ORDER BY logical_date, updated_at
"""
FEEDBACK_SQL = """
SELECT logical_date, champion_version, previous_version, labelled_rows, metric, champion_score, previous_score,
       rolled_back, decision
  FROM loopline.feedback_checks WHERE pipeline = %(p)s ORDER BY logical_date
"""


def _cell(value, fmt: str = "{}") -> str:
    return "-" if value is None else fmt.format(value)


def daily_rows(settings: Settings, spec: PipelineSpec) -> tuple[list[dict], list[dict], list[dict]]:
    with db.connect(settings.db_url) as conn:
        params = {"p": spec.name, "entity_dataset": spec.entity_source.dataset,
                  "label_dataset": spec.label_source.dataset}
        return tuple(db.fetch_all(conn, sql, params) for sql in (DAILY_SQL, TRAINING_SQL, FEEDBACK_SQL))


def by_interval(days: list[dict], cron: str) -> list[dict]:
    """The per-day rows summed per interval of the schedule (a month of a monthly pipeline).
    Counts add up; a contract judged the whole interval, so its figures are taken once."""
    from loopline.core.interval import interval_of

    grouped: dict[str, list[dict]] = {}
    for day in days:
        grouped.setdefault(str(interval_of(cron, day["logical_date"])), []).append(day)

    def total(rows: list[dict], key: str):
        values = [r[key] for r in rows if r[key] is not None]
        return sum(values) if values else None

    def first(rows: list[dict], key: str):
        return next((r[key] for r in rows if r[key] is not None), None)

    return [{"logical_date": interval, **{k: total(rows, k) for k in ("events_in", "events_accepted",
                                                                        "events_quarantined", "labels", "predictions")},
             **{k: first(rows, k) for k in ("contract_ok", "contract_rejected", "contract_failed")},
             "scored_by": max((r["scored_by"] for r in rows if r["scored_by"]), default=None),
             "max_psi": max((r["max_psi"] for r in rows if r["max_psi"] is not None), default=None),
             "drifted_features": sorted({f for r in rows for f in r["drifted_features"] or []}),
             "retrain_requested": any(r["retrain_requested"] for r in rows)}
            for interval, rows in grouped.items()]


def _feedback_lines(checks: list[dict]) -> list[str]:
    judged = [c for c in checks if c["champion_score"] is not None]
    lines = ["", "Realised performance (champion vs previous champion on the same returned labels):"]
    for c in judged:
        lines.append(f"  {c['logical_date']!s:<11} v{c['champion_version']} {c['metric']}={c['champion_score']:.4f} vs "
                     f"v{c['previous_version']} {c['previous_score']:.4f} on {c['labelled_rows']} rows: "
                     + ("ROLLED BACK" if c["rolled_back"] else "kept"))
    if not judged:
        lines.append(f"  nothing judged yet ({checks[-1]['decision']})" if checks else "  no check yet")
    return lines


def format_summary(days: list[dict], trainings: list[dict], checks: list[dict] = ()) -> str:
    width = max([11, *(len(str(d["logical_date"])) + 1 for d in days)])
    header = (f"{'dates':<{width}} {'entities':>9} {'accepted':>8} {'quarant.':>8} {'labels':>6} {'contract':>8} {'rejected':>8} "
              f"{'predictions':>11} {'model':>5} {'max PSI':>7}  drifted features")
    lines = [header, "-" * len(header)]
    for d in days:
        contract = "-" if d["contract_ok"] is None else ("pass" if d["contract_ok"] else f"FAIL({d['contract_failed']})")
        drifted = ", ".join(d["drifted_features"] or []) + ("  -> retraining requested" if d["retrain_requested"] else "")
        lines.append(f"{d['logical_date']!s:<{width}} {_cell(d['events_in']):>9} {_cell(d['events_accepted']):>8} "
                     f"{_cell(d['events_quarantined']):>8} {_cell(d['labels']):>6} {contract:>8} {_cell(d['contract_rejected']):>8} "
                     f"{d['predictions']:>11} {_cell(d['scored_by'], 'v{}'):>5} {_cell(d['max_psi'], '{:.3f}'):>7}  "
                     f"{drifted or '-'}")
    lines += ["", "Training and promotion (champion/challenger gate on the candidate's holdout):"]
    for t in trainings:
        versus = (f"vs champion v{t['champion_version']} {_cell(t['champion_score'], '{:.4f}')}"
                  if t["champion_version"] and t["champion_version"] != t["model_version"] else "")
        lines.append(f"  {t['logical_date']!s:<11} {t['dag_id']:<20} v{t['model_version']:<3} "
                     f"{t['primary_metric']}={t['candidate_score']:.4f} {versus:<28} "
                     f"{'PROMOTED' if t['promoted'] else 'not promoted'}: {t['decision']}")
    return "\n".join(lines + _feedback_lines(list(checks)))


def champion_line(spec: PipelineSpec) -> str:
    from mlflow import MlflowClient

    from loopline.models.aliases import CHAMPION, alias_version

    client = MlflowClient()
    version = alias_version(client, spec.model_name, CHAMPION)
    if version is None:
        return f"Champion: none yet for model {spec.model_name}"
    run = client.get_run(client.get_model_version(spec.model_name, str(version)).run_id)
    metrics = ", ".join(f"{k}={v:.4f}" for k, v in sorted(run.data.metrics.items()))
    return f"Champion: {spec.model_name} v{version} (run {run.info.run_id[:8]}, {run.info.run_name}): {metrics}"


def print_summary(settings: Settings, spec: PipelineSpec) -> None:
    """The summary, one line per run interval (a day for a daily pipeline)."""
    days, trainings, checks = daily_rows(settings, spec)
    print(f"Loopline summary for pipeline {spec.name}\n")
    print(format_summary(days if spec.schedule == "daily" else by_interval(days, spec.cron), trainings, checks))
    print()
    print(champion_line(spec))
