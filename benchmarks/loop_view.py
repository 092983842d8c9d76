"""Loop view benchmark: the pipeline page for a year of daily runs, against the same page empty.

One run: a throw-away pipeline gets a nightly DAG in Airflow's metadata DB (so the view lists
it) and a generated year of history in PostgreSQL, written the way the stages write it:

  - ingest batches and contract results of two datasets a day, with RULES rules each (a few
    failing);
  - PSI of FEATURES features a day, the drift verdict and the predictions' distribution;
  - a realised-performance check a day (2 critical slices of 8 values each), a retraining a
    week, promotions and rollbacks, and a retraining request on each drifted day.

Timed, through the real Airflow API server (its auth included) and a real headless Chromium
logged in as a viewer:

  server    GET of the page's HTML with a bearer token (the history is embedded in it);
  browser   navigation start to the load event in Chromium, in a 1440×1100 window: the page,
            the ECharts bundle from the plugin, and the charts of the first screen drawn (the
            drawing script runs before `load`; charts further down are drawn as they scroll
            into view);
  all drawn the same in a window tall enough for every chart: all of them drawn before `load`;

each for the year and for the same page with no history at all (the floor: auth, the DAG
lookup, the template, the charting library). One unmeasured warm-up, then the median of
REPEATS. The target: the year's page loads in the browser in under TARGET_S.

    make bench        (or: .venv/bin/python benchmarks/loop_view.py)

Writes benchmarks/results/loop_view.json and prints a table.
"""
from __future__ import annotations

import json
import os
import random
import statistics
import sys
import tempfile
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
from bench_common import median_after_warm_up, report, scratch_pipelines  # noqa: E402

TARGET_S = 1.0
TALL_WINDOW = 4000  # pixels: every chart of the pipeline page on the first screen
REPEATS = 5
DAYS, FEATURES, RULES, DATASETS = 365, 15, 12, ("events", "labels")
FIRST = date(2025, 1, 1)
BUNDLE = "loopline-bench"


def register_nightly_dag(pipeline: str, folder: Path) -> None:
    """The pipeline's nightly DAG, built by the same factory as dags/, in a bundle of its own."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db

    local = "airflow.dag_processing.bundles.local.LocalDagBundle"
    os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps([
        {"name": "dags-folder", "classpath": local, "kwargs": {}},
        {"name": BUNDLE, "classpath": local, "kwargs": {"path": str(folder)}}])
    (folder / f"{pipeline}_nightly.py").write_text("from loopline_airflow.dag_factory import nightly_dag\n\n"
                                                   f"dag = nightly_dag({pipeline!r}, scheduled=False)\n")
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(BundleDagBag(dag_folder=folder, bundle_path=folder, bundle_name=BUNDLE), BUNDLE, None)


def write_year(db_url: str, pipeline: str) -> dict[str, int]:
    """A year of daily history for `pipeline`, in the tables the stages write; rows per table."""
    import psycopg2.extras

    from loopline.core import db
    from loopline.ops.bootstrap import admin_db_url

    rng, at = random.Random(7), lambda day: datetime.combine(day, datetime.min.time(), timezone.utc)
    days = [FIRST + timedelta(days=i) for i in range(DAYS)]
    rows: dict[str, list[tuple]] = {name: [] for name in (
        "ingest_batches", "contract_validations", "contract_results", "drift_metrics", "monitor_runs",
        "feedback_checks", "retrain_requests", "training_runs", "alias_history")}
    champion = 1
    for n, day in enumerate(days):
        run_id = f"scheduled__{day}"
        for dataset in DATASETS:
            consumed = rng.randint(2500, 3500)
            rows["ingest_batches"].append((pipeline, dataset, 2 * n + DATASETS.index(dataset), run_id, day, dataset, "{}",
                                           consumed, consumed - 10, 10, json.dumps({day.isoformat(): consumed - 10}),
                                           json.dumps({day.isoformat(): 10})))
            failing = {rng.randrange(RULES)} if rng.random() < 0.1 else set()
            rows["contract_validations"].append((pipeline, dataset, day, run_id, f"{pipeline}_{dataset}", True, consumed - 10,
                                                 consumed - 16, 6, None, day))
            rows["contract_results"] += [(pipeline, dataset, day, run_id, f"rule_{r}", "row", "expect_column_values_to_not_be_null",
                                          f"column_{r}", r not in failing, 6 if r in failing else 0, consumed)
                                         for r in range(RULES)]
        scores = {f"feature_{f}": rng.random() * (0.35 if n % 60 == 59 else 0.15) for f in range(FEATURES)}
        drifted = sorted(f for f, v in scores.items() if v > 0.2)
        rows["drift_metrics"] += [(pipeline, day, day, f, v, champion) for f, v in scores.items()]
        quantiles = sorted(rng.random() for _ in range(7))
        rows["monitor_runs"].append((pipeline, day, day, champion, 3000, max(scores.values()), json.dumps(drifted),
                                     bool(drifted), 0.2, json.dumps({"rows": 3000, "mean": sum(quantiles) / 7, "quantiles": dict(
                                         zip(("0.0", "0.05", "0.25", "0.5", "0.75", "0.95", "1.0"), quantiles))})))
        slices = {field: [{"value": f"{field}_{v}", "rows": 360, "champion": 0.8 + rng.random() / 10,
                           "previous": 0.8 + rng.random() / 10} for v in range(8)] for field in ("slice_a", "slice_b")}
        rows["feedback_checks"].append((pipeline, day, champion, max(champion - 1, 1), 2900, "roc_auc",
                                        0.8 + rng.random() / 10, 0.8 + rng.random() / 10, 0.02, False, "kept",
                                        json.dumps(slices)))
        if drifted:
            reasons = [{"kind": "feature_drift", "detail": f"PSI above 0.2 for {', '.join(drifted)}"}]
            rows["retrain_requests"].append((pipeline, day, json.dumps(reasons), json.dumps(["feature_drift"]), "[]",
                                             f"{pipeline}_nightly", run_id, at(day), "rejected", "kept"))
        if n % 7 == 6:
            promoted = rng.random() < 0.5
            version = len(rows["training_runs"]) + 2
            rows["training_runs"].append((pipeline, day, f"{pipeline}_retrain", uuid.uuid4().hex, version, "roc_auc",
                                          0.85, champion, 0.84, promoted, "gate: better by 0.01" if promoted else "kept"))
            if promoted:
                rows["alias_history"].append((pipeline, pipeline, "champion", champion, version, "gate: better by 0.01",
                                              f"{pipeline}_retrain", run_id, at(day)))
                champion = version
    with db.connect(db_url) as conn, conn.cursor() as cur:
        for table, values in rows.items():
            columns = COLUMNS[table]
            psycopg2.extras.execute_values(cur, f"INSERT INTO loopline.{table} ({columns}) VALUES %s", values)
    # The planner statistics a year-old table has (autovacuum keeps them): a table filled a
    # second ago has none, and its plans would be those of an empty table.
    with db.connect(admin_db_url()) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"ANALYZE {', '.join(f'loopline.{table}' for table in rows)}")
    return {table: len(values) for table, values in rows.items()}


COLUMNS = {
    "ingest_batches": "pipeline, dataset, batch_id, run_id, logical_date, source, offsets, consumed, accepted, quarantined, "
                      "accepted_by_date, quarantined_by_date",
    "contract_validations": "pipeline, dataset, logical_date, run_id, suite, success, rows_in, rows_valid, "
                            "rows_quarantined, report_uri, last_date",
    "contract_results": "pipeline, dataset, logical_date, run_id, rule, severity, expectation, column_name, success, "
                        "unexpected_count, element_count",
    "drift_metrics": "pipeline, logical_date, last_date, feature, psi, model_version",
    "monitor_runs": "pipeline, logical_date, last_date, model_version, rows_scored, max_psi, drifted_features, "
                    "retrain_requested, psi_threshold, predictions",
    "feedback_checks": "pipeline, logical_date, champion_version, previous_version, labelled_rows, metric, "
                       "champion_score, previous_score, tolerance, rolled_back, decision, slices",
    "retrain_requests": "pipeline, logical_date, reasons, requested, throttled, dag_id, run_id, requested_at, outcome, "
                        "outcome_detail",
    "training_runs": "pipeline, logical_date, dag_id, mlflow_run_id, model_version, primary_metric, candidate_score, "
                     "champion_version, champion_score, promoted, decision",
    "alias_history": "pipeline, model_name, alias, from_version, to_version, reason, dag_id, run_id, changed_at",
}


def main() -> int:
    from airflow.api.common.delete_dag import delete_dag

    from browser import Browser
    from loopline.core.config import Settings
    from loopline.core.spec import derived_spec, load_spec
    from loopline.ops.bootstrap import remove_pipeline_data
    from stack_access import stack

    settings, secrets = Settings.from_env(), stack.read_env_file()
    base = os.environ["AIRFLOW__API__BASE_URL"].rstrip("/")
    token = requests.post(f"{base}/auth/token", json={"username": "viewer", "password": secrets["AIRFLOW_VIEWER_PASSWORD"]},
                          timeout=30).json()["access_token"]
    year, empty = (f"bench_view_{kind}_{uuid.uuid4().hex[:6]}" for kind in ("year", "empty"))
    with scratch_pipelines() as pipelines, tempfile.TemporaryDirectory(prefix="loopline-bench-dags-") as dags:
        import yaml

        for name in (year, empty):
            (pipelines / f"{name}.yaml").write_text(yaml.safe_dump(derived_spec("card_fraud", name, {"deadline_hours": None})))
            register_nightly_dag(name, Path(dags))
        browser = Browser()
        try:
            written = write_year(settings.db_url, year)
            browser.log_in("viewer", secrets["AIRFLOW_VIEWER_PASSWORD"], then="/loopline/")
            timings = {}
            for label, name in (("year", year), ("empty", empty)):
                page = f"/loopline/pipelines/{name}"
                timings[label] = {
                    "server_s": median_after_warm_up(lambda: requests.get(
                        f"{base}{page}", headers={"Authorization": f"Bearer {token}"}, timeout=60).raise_for_status(),
                        REPEATS)[0],
                    "browser_s": median_load_s(browser, page),
                    "all_drawn_s": median_load_s(browser, page, height=TALL_WINDOW),
                }
                assert browser.console_errors() == [], f"the {label} page logged console errors"
            size = len(requests.get(f"{base}/loopline/pipelines/{year}", headers={"Authorization": f"Bearer {token}"},
                                    timeout=60).content)
        finally:
            browser.close()
            for name in (year, empty):
                remove_pipeline_data(settings, load_spec(name))
                delete_dag(f"{name}_nightly")
    result = {"days": DAYS, "rows_written": written, "page_bytes": size, "target_s": TARGET_S, "repeats": REPEATS,
              **{f"{label}_{what}": round(value, 3) for label, t in timings.items() for what, value in t.items()},
              "meets_target": timings["year"]["browser_s"] < TARGET_S}
    report("loop_view", result, [{"page": label, "server s": round(t["server_s"], 3), "browser s": round(t["browser_s"], 3),
                                  "all drawn s": round(t["all_drawn_s"], 3),
                                  "x empty (browser)": round(t["browser_s"] / timings["empty"]["browser_s"], 2)}
                                 for label, t in timings.items()])
    print(f"\na year of daily runs ({DAYS} dates, {size / 1e6:.2f} MB of HTML) loads in {timings['year']['browser_s']:.3f} s "
          f"in Chromium (target < {TARGET_S} s): {'met' if result['meets_target'] else 'NOT met'}; with every chart "
          f"drawn: {timings['year']['all_drawn_s']:.3f} s")
    return 0


def median_load_s(browser, page: str, height: int = 1100) -> float:
    """Median seconds from navigation start to the end of the load event, as Chromium measured
    them in a 1440 × `height` window, after one unmeasured load."""
    def load() -> float:
        browser.open(page)
        browser.wait_for("#chart-rows[data-drawn]")
        return browser.script("return performance.getEntriesByType('navigation')[0].loadEventEnd / 1000;")

    browser.driver.set_window_size(1440, height)
    load()
    return statistics.median(load() for _ in range(REPEATS))


if __name__ == "__main__":
    sys.exit(main())
