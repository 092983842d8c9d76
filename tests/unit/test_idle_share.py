"""The demo-week benchmark's idle share: task time counted once where tasks overlap, only
inside the run's window, and the sensor's wait left out."""
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from nightly import busy_seconds, run_figures  # noqa: E402

T0 = datetime(2026, 11, 26, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def stamp(seconds: float) -> str:
    return at(seconds).isoformat().replace("+00:00", "Z")


def task(task_id: str, start: float, end: float, operator: str = "_PythonDecoratedOperator", tries: int = 1) -> dict:
    return {"task_id": task_id, "operator": operator, "start_date": stamp(start), "end_date": stamp(end),
            "duration": end - start, "try_number": tries}


def test_overlapping_tasks_count_once_and_only_inside_the_window():
    intervals = [(at(0), at(10)), (at(5), at(12)), (at(20), at(30)), (at(28), at(40))]
    assert busy_seconds(intervals, (at(2), at(35))) == (12 - 2) + (35 - 20)


def test_the_sensor_wait_is_not_idle_time():
    run = {"logical_date": "2026-11-26T00:00:00Z", "state": "success", "start_date": stamp(0), "end_date": stamp(100)}
    tasks = [task("wait_for_data", 1, 40, operator="NewDataSensor"),  # 39 s waiting for data
             task("ingest", 42, 60), task("validate_a", 61, 90), task("validate_b", 61, 80), task("score", 92, 99)]
    figures = run_figures(run, tasks)
    assert figures["wall_s"] == 100
    assert figures["idle_s"] == (42 - 40) + (61 - 60) + (92 - 90) + (100 - 99)
    assert figures["idle_share"] == round(6 / 60, 3)


def test_a_task_the_scheduler_skipped_has_no_duration_to_count():
    run = {"logical_date": "2026-11-26T00:00:00Z", "state": "success", "start_date": stamp(0), "end_date": stamp(30)}
    tasks = [task("train", 1, 10), task("register", 11, 11, tries=0), task("score", 12, 20)]  # train skipped itself
    assert run_figures(run, tasks)["task_s"] == {"train": 9, "score": 8}
