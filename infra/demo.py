"""`make demo`: the nightly loop for the last 7 days, run by the real Airflow scheduler.

1. simulate 7 days of card payments (ending yesterday, UTC) with drift from day 6;
2. create a backfill of the nightly DAG for those days through Airflow's REST API, then
   unpause the DAG: the scheduler runs one day after another, and the drift days emit the
   retrain-request asset event that schedules the retraining DAG;
3. wait for every run, then print the per-day summary and where to look next.
Runs again safely: days already in Kafka are not re-sent and the runs are idempotent.
"""
from __future__ import annotations

import os
import sys
import time
from datetime import date, datetime, timedelta, timezone

import requests

from loopline.config import Settings
from loopline.report import print_summary
from loopline.spec import load_spec, pipelines_dir

PIPELINE = "card_fraud"
NIGHTLY, RETRAIN = f"{PIPELINE}_nightly", f"{PIPELINE}_retrain"
DAYS, DRIFT_DAYS = 7, 2
TERMINAL = {"success", "failed"}
TIMEOUT_S = 20 * 60


class Airflow:
    """The few REST calls the demo needs (Airflow 3 public API, bearer token)."""

    def __init__(self, base_url: str, password: str) -> None:
        self.base = base_url.rstrip("/")
        token = requests.post(f"{self.base}/auth/token", json={"username": "admin", "password": password}, timeout=30)
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

    def runs(self, dag_id: str, since: datetime | None = None) -> list[dict]:
        params = {"limit": 100, "order_by": "logical_date"}
        if since is not None:
            params["run_after_gte"] = since.isoformat()
        return self.call("GET", f"/dags/{dag_id}/dagRuns", params=params).json()["dag_runs"]


def iso(day: date) -> str:
    return datetime.combine(day, datetime.min.time(), tzinfo=timezone.utc).isoformat()


def main() -> int:
    started = time.monotonic()
    last = datetime.now(timezone.utc).date() - timedelta(days=1)
    days = [last - timedelta(days=DAYS - 1 - i) for i in range(DAYS)]
    drift_from = days[-DRIFT_DAYS]
    print(f"== simulate {days[0]}..{days[-1]} (drift from {drift_from})")
    sys.path.insert(0, str(pipelines_dir()))  # the demo pipeline's own tooling lives beside its spec
    from card_fraud_simulator import main as simulate

    if simulate(["--from", days[0].isoformat(), "--to", days[-1].isoformat(), "--drift-from", drift_from.isoformat()]):
        return 1

    airflow = Airflow(os.environ["AIRFLOW__API__BASE_URL"], os.environ["AIRFLOW_ADMIN_PASSWORD"])
    for dag_id in (NIGHTLY, RETRAIN):
        airflow.wait_for_dag(dag_id)
    airflow.call("PATCH", f"/dags/{RETRAIN}", json={"is_paused": False})
    demo_start = datetime.now(timezone.utc)
    print(f"== backfill {NIGHTLY} {days[0]}..{days[-1]} through the scheduler (one day at a time)")
    airflow.call("POST", "/backfills", json={
        "dag_id": NIGHTLY, "from_date": iso(days[0]), "to_date": iso(days[-1]), "run_backwards": False,
        "dag_run_conf": {}, "reprocess_behavior": "completed", "max_active_runs": 1})
    airflow.call("PATCH", f"/dags/{NIGHTLY}", json={"is_paused": False})

    wanted = {iso(d) for d in days}
    seen: dict[str, str] = {}
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        nightly = {r["logical_date"]: r for r in airflow.runs(NIGHTLY, since=demo_start - timedelta(days=DAYS + 2))
                   if r["logical_date"] and _same_instant(r["logical_date"], wanted) and r["run_type"] == "backfill"}
        for logical, run in sorted(nightly.items()):
            if seen.get(logical) != run["state"]:
                seen[logical] = run["state"]
                print(f"  {logical[:10]} {run['state']}")
        retrain = [r for r in airflow.runs(RETRAIN) if _after(r["run_after"], demo_start)]
        done = len(nightly) == DAYS and all(r["state"] in TERMINAL for r in nightly.values())
        if done and all(r["state"] in TERMINAL for r in retrain):
            break
        if time.monotonic() > deadline:
            print(f"ERROR: runs not finished after {TIMEOUT_S // 60} min; see the Airflow UI", file=sys.stderr)
            return 1
        time.sleep(5)

    print()
    print_summary(Settings.from_env(), load_spec(PIPELINE))
    failed = sorted(k[:10] for k, r in nightly.items() if r["state"] != "success")
    print(f"\nNightly runs: {DAYS - len(failed)}/{DAYS} succeeded" + (f"; FAILED: {failed}" if failed else ""))
    print(f"Retraining runs triggered by drift: {len(retrain)} "
          f"({', '.join(r['state'] for r in retrain) or 'none'})")
    print(f"Loop wall time: {time.monotonic() - started:.0f} s\n")
    print(f"Airflow UI : {os.environ['AIRFLOW__API__BASE_URL']}  login admin / {os.environ['AIRFLOW_ADMIN_PASSWORD']}"
          "  (generated locally, kept in .loopline/env)")
    print(f"MLflow UI  : {os.environ['MLFLOW_TRACKING_URI']}")
    print("The stack stays up; `make down` stops it.")
    return 1 if failed else 0


def _same_instant(text: str, wanted: set[str]) -> bool:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).isoformat() in wanted


def _after(text: str | None, moment: datetime) -> bool:
    return text is not None and datetime.fromisoformat(text.replace("Z", "+00:00")) >= moment


if __name__ == "__main__":
    sys.exit(main())
