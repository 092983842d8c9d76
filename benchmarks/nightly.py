"""The demo week through the scheduler: how long a small day takes, where its time goes, and
what the stack holds in memory at the end.

One run: `make demo`'s loop (infra/demo.py: seven days of about 3,000 card payments each,
backfilled through the real Airflow scheduler, with the retraining it triggers), then
Airflow's own records of the week's nightly runs, read through its REST API:

  day       a nightly run's wall time, from its start to its end (the per-day median is the
            figure; target <= DAY_TARGET_S);
  idle      the share of a run's wall time in which none of its tasks runs. The sensor is
            left out: a run's window starts when its sensor ends (the data was there), so
            waiting for data is not counted as the scheduler's;
  tasks     each task's median duration over the week's runs in which it ran (one the scheduler
            skipped, at try 0 because an upstream task skipped, is left out);
  stack     the whole stack's resident memory at the end (infra/stack.py's `status` total,
            RSS; target <= FOOTPRINT_TARGET_MIB), and its PSS (shared pages counted once).

    make bench        (or, on the running stack: .venv/bin/python benchmarks/nightly.py)

Writes benchmarks/results/nightly.json and prints a table.
"""
from __future__ import annotations

import os
import statistics
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "infra"))
import demo  # noqa: E402 (infra/demo.py: the loop and its Airflow client)
import stack  # noqa: E402 (infra/stack.py: the services and their memory)
from bench_common import report  # noqa: E402

DAY_TARGET_S = 25
FOOTPRINT_TARGET_MIB = 5 * 1024
Interval = tuple[datetime, datetime]


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def busy_seconds(intervals: list[Interval], window: Interval) -> float:
    """Seconds of `window` covered by at least one of `intervals` (overlaps counted once)."""
    covered, reached = 0.0, window[0]
    for start, end in sorted(intervals):
        start, end = max(start, reached), min(end, window[1])
        if end > start:
            covered += (end - start).total_seconds()
            reached = end
    return covered


def run_figures(run: dict, tasks: list[dict]) -> dict:
    """One nightly run's wall time, idle share (sensor left out) and task durations."""
    sensors = [t for t in tasks if "Sensor" in (t.get("operator") or "")]
    others = [t for t in tasks if t not in sensors and t["start_date"] and t["end_date"]]
    start, end = instant(run["start_date"]), instant(run["end_date"])
    window_start = max([start, *(instant(t["end_date"]) for t in sensors if t["end_date"])])
    window = (window_start, end)
    length = (end - window_start).total_seconds()
    idle = length - busy_seconds([(instant(t["start_date"]), instant(t["end_date"])) for t in others], window)
    return {"logical_date": run["logical_date"][:10], "state": run["state"],
            "wall_s": round((end - start).total_seconds(), 1), "idle_s": round(idle, 1),
            "idle_share": round(idle / length, 3) if length > 0 else 0.0,
            "task_s": {t["task_id"]: round(t["duration"] or 0.0, 1) for t in tasks if t["try_number"]}}


def footprint() -> dict:
    """Each service's memory now (MiB): resident (shared pages once per process, an upper
    bound) and proportional (shared pages split among their processes), and the totals."""
    services = stack.services(stack.load_env())
    rss = {service.name: round(service.rss_mib()) for service in services}
    pss = {service.name: round(service.pss_mib()) for service in services}
    return {"total_mib": sum(rss.values()), "total_pss_mib": sum(pss.values()),
            "per_service_mib": rss, "per_service_pss_mib": pss}


def main() -> int:
    since = datetime.now(timezone.utc) - timedelta(seconds=5)
    if demo.main() != 0:
        print("ERROR: the demo week did not succeed: no figures (see its output above)", file=sys.stderr)
        return 1
    memory = footprint()
    airflow = demo.Airflow(os.environ["AIRFLOW__API__BASE_URL"], "engineer", os.environ["AIRFLOW_ENGINEER_PASSWORD"])
    runs = sorted((r for r in airflow.runs(demo.NIGHTLY)
                   if r["run_type"] == "backfill" and r["queued_at"] and instant(r["queued_at"]) >= since),
                  key=lambda r: r["logical_date"])
    days = [run_figures(run, airflow.call("GET", f"/dags/{demo.NIGHTLY}/dagRuns/{run['dag_run_id']}/taskInstances",
                                          params={"limit": 100}).json()["task_instances"]) for run in runs]
    day_median = statistics.median(d["wall_s"] for d in days)
    task_ids = sorted({task for d in days for task in d["task_s"]})
    result = {
        "pipeline": demo.PIPELINE, "cores": os.cpu_count(), "runs": len(days),
        "airflow_parallelism": int(os.environ["AIRFLOW__CORE__PARALLELISM"]),
        "statistic": "median over the demo week's nightly runs, from Airflow's records",
        "day_wall_s_median": day_median, "day_target_s": DAY_TARGET_S, "meets_day_target": day_median <= DAY_TARGET_S,
        "idle_share_median": statistics.median(d["idle_share"] for d in days),
        "idle_share_range": [min(d["idle_share"] for d in days), max(d["idle_share"] for d in days)],
        "task_s_median": {task: statistics.median(d["task_s"][task] for d in days if task in d["task_s"])
                          for task in task_ids},
        "footprint_at_end": memory, "footprint_target_mib": FOOTPRINT_TARGET_MIB,
        "meets_footprint_target": memory["total_mib"] <= FOOTPRINT_TARGET_MIB,
        "days": days,
    }
    report("nightly", result, [{"date": d["logical_date"], "state": d["state"], "wall s": d["wall_s"],
                                "idle s": d["idle_s"], "idle share": d["idle_share"]} for d in days])
    print(f"per-day median {day_median:.1f} s (target <= {DAY_TARGET_S} s); stack at the end "
          f"{memory['total_mib']} MiB RSS (target <= {FOOTPRINT_TARGET_MIB} MiB), {memory['total_pss_mib']} MiB PSS")
    print("task medians: " + ", ".join(f"{t} {s:.1f} s" for t, s in result["task_s_median"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
