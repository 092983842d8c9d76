"""`make demo [PIPELINE=<name>]`: a demo pipeline's loop, run by the real Airflow scheduler.

1. send the pipeline's demo data to Kafka, with the tooling beside its spec:
   card_fraud (default) simulates 7 days of card payments ending yesterday (UTC), with drift
   from day 6; bike_demand replays the UCI bike-sharing file (2011-2012);
2. create a backfill of the nightly DAG over those dates through Airflow's REST API, then
   unpause the DAG: the scheduler runs one interval (a day, a month) after another, and runs
   that see drift emit the retrain-request asset event that schedules the retraining DAG;
3. wait for every run, then print the summary and where to look next.
Runs again safely: data already in Kafka is not re-sent and the runs are idempotent.
"""
from __future__ import annotations

import os
import sys
import time
from datetime import date, datetime, timedelta, timezone

import requests

from loopline.core.config import Settings
from loopline.core.interval import schedule_intervals
from loopline.core.spec import load_spec, pipelines_dir
from loopline.monitoring.report import print_summary

PIPELINE = os.environ.get("PIPELINE") or "card_fraud"
NIGHTLY, RETRAIN = f"{PIPELINE}_nightly", f"{PIPELINE}_retrain"
DEMO_DATA = {"card_fraud": "card_fraud_simulator", "bike_demand": "bike_demand_dataset"}  # module beside the spec
TERMINAL = {"success", "failed"}
MINUTES_PER_RUN = 5  # the longest a run (and the retraining it triggers) should take here


class Airflow:
    """The few REST calls the demo needs (Airflow 3 public API, bearer token)."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base = base_url.rstrip("/")
        token = requests.post(f"{self.base}/auth/token", json={"username": username, "password": password},
                              timeout=30)
        token.raise_for_status()
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token.json()['access_token']}"

    def call(self, method: str, path: str, **kwargs) -> requests.Response:
        response = self.session.request(method, f"{self.base}/api/v2{path}", timeout=30, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"Airflow API {method} {path}: {response.status_code} {response.text[:400]}")
        return response

    def wait_for_dag(self, dag_id: str, timeout_s: int = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while self.session.get(f"{self.base}/api/v2/dags/{dag_id}", timeout=30).status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError(f"DAG {dag_id} not parsed after {timeout_s}s: see .loopline/logs/airflow-dag-processor.log")
            time.sleep(3)

    def backfill(self, dag_id: str, from_date: str, to_date: str) -> dict:
        """Start a backfill, or follow the one already running (a demo interrupted and started again)."""
        response = self.session.post(f"{self.base}/api/v2/backfills", timeout=30, json={
            "dag_id": dag_id, "from_date": from_date, "to_date": to_date, "run_backwards": False,
            "dag_run_conf": {}, "reprocess_behavior": "completed", "max_active_runs": 1})
        if response.status_code != 409:
            response.raise_for_status()
            return response.json()
        running = [b for b in self.call("GET", "/backfills", params={"dag_id": dag_id}).json()["backfills"]
                   if b["completed_at"] is None]
        print(f"   a backfill of {dag_id} is already running (since {running[-1]['created_at']}): following it")
        return running[-1]

    def runs(self, dag_id: str) -> list[dict]:
        runs, offset = [], 0
        while True:
            page = self.call("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100, "offset": offset}).json()
            runs += page["dag_runs"]
            offset += 100
            if offset >= page["total_entries"]:
                return runs


def iso(day: date) -> str:
    return datetime.combine(day, datetime.min.time(), tzinfo=timezone.utc).isoformat()


def main() -> int:
    import importlib

    started = time.monotonic()
    if PIPELINE not in DEMO_DATA:
        print(f"ERROR: no demo data for pipeline {PIPELINE!r}; demo pipelines: {sorted(DEMO_DATA)}", file=sys.stderr)
        return 2
    sys.path.insert(0, str(pipelines_dir()))  # the demo pipeline's own tooling lives beside its spec
    first, last = importlib.import_module(DEMO_DATA[PIPELINE]).send_demo_data()
    spec = load_spec(PIPELINE)
    wanted = {iso(i.first) for i in schedule_intervals(spec.cron, first, last)}
    timeout_s = max(20, MINUTES_PER_RUN * len(wanted)) * 60

    # The engineer (Airflow's User role) may unpause, trigger and backfill: all the demo does.
    airflow = Airflow(os.environ["AIRFLOW__API__BASE_URL"], "engineer", os.environ["AIRFLOW_ENGINEER_PASSWORD"])
    for dag_id in (NIGHTLY, RETRAIN):
        airflow.wait_for_dag(dag_id)
    airflow.call("PATCH", f"/dags/{RETRAIN}", json={"is_paused": False})
    print(f"== backfill {NIGHTLY} {first}..{last} ({len(wanted)} runs of its {spec.schedule} schedule) through the "
          "scheduler, one after another")
    demo_start = _backfill_started(airflow.backfill(NIGHTLY, min(wanted), max(wanted)))
    airflow.call("PATCH", f"/dags/{NIGHTLY}", json={"is_paused": False})

    seen: dict[str, str] = {}
    deadline = time.monotonic() + timeout_s
    while True:
        # A backfill run's run_after is the end of its (possibly years old) interval: select by
        # type, interval and when this demo queued it.
        nightly = {r["logical_date"]: r for r in airflow.runs(NIGHTLY)
                   if r["logical_date"] and _same_instant(r["logical_date"], wanted) and r["run_type"] == "backfill"
                   and _after(r["queued_at"], demo_start)}
        for logical, run in sorted(nightly.items()):
            if seen.get(logical) != run["state"]:
                seen[logical] = run["state"]
                print(f"  {run['dag_run_id']} {run['state']}")
        retrain = [r for r in airflow.runs(RETRAIN) if _after(r["run_after"], demo_start)]
        done = len(nightly) == len(wanted) and all(r["state"] in TERMINAL for r in nightly.values())
        if done and all(r["state"] in TERMINAL for r in retrain):
            break
        if time.monotonic() > deadline:
            print(f"ERROR: runs not finished after {timeout_s // 60} min; see the Airflow UI", file=sys.stderr)
            return 1
        time.sleep(5)

    print()
    print_summary(Settings.from_env(), spec)
    failed = sorted(k[:10] for k, r in nightly.items() if r["state"] != "success")
    print(f"\nNightly runs: {len(wanted) - len(failed)}/{len(wanted)} succeeded" + (f"; FAILED: {failed}" if failed else ""))
    print(f"Retraining runs triggered by drift: {len(retrain)} "
          f"({', '.join(r['state'] for r in retrain) or 'none'})")
    print(f"Loop wall time: {time.monotonic() - started:.0f} s\n")
    print(f"Airflow UI : {os.environ['AIRFLOW__API__BASE_URL']}  logins admin, operator, engineer, viewer; "
          "passwords generated locally: AIRFLOW_<LOGIN>_PASSWORD in .loopline/env (never printed)")
    print(f"MLflow UI  : {os.environ['MLFLOW_TRACKING_URI']}  logins loopline-writer, loopline-viewer; passwords "
          "MLFLOW_TRACKING_PASSWORD and LOOPLINE_MLFLOW_VIEWER_PASSWORD in .loopline/env")
    print("The stack stays up; `make down` stops it.")
    return 1 if failed else 0


def _backfill_started(backfill: dict) -> datetime:
    """When the backfill was created: its runs are queued from then on."""
    return datetime.fromisoformat(backfill["created_at"].replace("Z", "+00:00")) - timedelta(seconds=5)


def _same_instant(text: str, wanted: set[str]) -> bool:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).isoformat() in wanted


def _after(text: str | None, moment: datetime) -> bool:
    return text is not None and datetime.fromisoformat(text.replace("Z", "+00:00")) >= moment


if __name__ == "__main__":
    sys.exit(main())
