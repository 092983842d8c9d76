"""DAG files are config: they import cleanly, declare ownership/retries/tags, and do no work when parsed."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((REPO / "dags").glob("*.py"))
HEAVY = ["pandas", "numpy", "pyspark", "sklearn", "lightgbm", "mlflow", "great_expectations", "kafka", "boto3",
         "psycopg2", "pyarrow"]

# Parses one DAG file in a fresh interpreter whose metadata DB is unreachable and where any
# Variable/Connection lookup raises, then reports what got imported.
PARSE_PROBE = """
import json, sys
from airflow.sdk import Variable
from airflow.sdk.definitions.connection import Connection
def forbidden(*a, **k): raise RuntimeError("metadata/connection/variable access at parse time")
Variable.get = staticmethod(forbidden)
Connection.get = classmethod(forbidden)
before = set(sys.modules)
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(sys.argv[1])
print(json.dumps({"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": sorted(bag.dags),
                  "modules": sorted(m.split(".")[0] for m in set(sys.modules) - before)}))
"""


def parse_in_isolation(dag_file: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'plugins'}:{os.environ.get('PYTHONPATH', '')}",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://nobody@127.0.0.1:1/no_such_db",
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    result = subprocess.run([sys.executable, "-c", PARSE_PROBE, str(dag_file)], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(REPO / "dags"))


def test_every_dag_file_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert {"card_fraud_nightly", "card_fraud_retrain"} <= set(dagbag.dags)


def test_every_dag_has_tags_owner_retries_and_docs(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert "loopline" in dag.tags, dag_id
        assert dag.doc_md, f"{dag_id} has no doc_md"
        for task in dag.tasks:
            assert task.owner == "loopline", f"{dag_id}.{task.task_id}"
            assert task.retries >= 1, f"{dag_id}.{task.task_id}"
            # a time limit per attempt: the sensor's is its trigger's (ingest.wait_timeout_minutes)
            assert task.execution_timeout is not None or task.task_id == "wait_for_data", f"{dag_id}.{task.task_id}"


def test_time_limits_come_from_the_spec(dagbag):
    from datetime import timedelta

    from loopline.core.spec import load_spec

    for pipeline in ("card_fraud", "bike_demand"):
        timeouts = load_spec(pipeline).timeouts
        for task in dagbag.dags[f"{pipeline}_nightly"].tasks:
            if task.task_id != "wait_for_data":
                name = "validate" if task.task_id.startswith("validate_") else task.task_id
                assert task.execution_timeout == timedelta(minutes=timeouts.minutes(name)), task.task_id


def test_every_task_alerts_when_it_fails_for_good(dagbag):
    for dag_id, dag in dagbag.dags.items():
        for task in dag.tasks:
            callbacks = task.on_failure_callback if isinstance(task.on_failure_callback, list) else [
                task.on_failure_callback]
            assert [c.__name__ for c in callbacks] == ["alert_failure"], f"{dag_id}.{task.task_id}"


def test_the_nightly_deadline_comes_from_the_spec(dagbag):
    from datetime import timedelta

    [deadline] = dagbag.dags["card_fraud_nightly"].deadline  # card_fraud sets deadline_hours: 8
    assert deadline.interval == timedelta(hours=8)
    # not queued_at: Airflow 3.3 cannot clear a run whose deadline references it (apache/airflow#70368)
    assert type(deadline.reference).__name__ == "DagRunLogicalDateDeadline"
    assert deadline.callback.path == "loopline_airflow.alerting.deadline_missed"
    assert deadline.callback.kwargs == {"pipeline": "card_fraud", "deadline_hours": 8}
    assert not dagbag.dags["bike_demand_nightly"].deadline  # bike_demand sets none


def test_nightly_loop_runs_every_stage_in_order(dagbag):
    dag = dagbag.dags["card_fraud_nightly"]
    for contract in ("validate_bronze_events", "validate_bronze_labels"):
        for check_then in ("check_feedback", "train"):
            order = ["wait_for_data", "ingest", contract, check_then, "register", "score", "monitor",
                     "request_retraining"]
            for upstream, downstream in pairwise(order):
                assert downstream in dag.get_task(upstream).downstream_task_ids
        assert {"late_reruns", "check_feedback", "train"} <= dag.get_task(contract).downstream_task_ids
    assert dag.get_task("late_reruns").downstream_task_ids == {"rerun_late_intervals"}
    assert dag.max_active_runs == 1


def test_a_rollback_on_returned_labels_comes_before_the_gate_and_scoring_but_not_before_training(dagbag):
    """Training reads no alias, so it runs beside the feedback check; register and score
    (which runs when register is skipped too) see the champion the check left."""
    dag = dagbag.dags["card_fraud_nightly"]
    assert dag.get_task("check_feedback").downstream_task_ids == {"register", "score"}
    assert "check_feedback" not in dag.get_task("train").upstream_task_ids


def test_spark_bound_tasks_go_to_the_spark_queue_and_the_rest_to_the_default_one(dagbag):
    """The cluster profile's Celery workers split by queue; the LocalExecutor ignores queues."""
    for pipeline in ("card_fraud", "bike_demand"):
        queues = {task.task_id: task.queue for task in dagbag.dags[f"{pipeline}_nightly"].tasks}
        spark_bound = {"ingest", "score", "monitor"} | {t for t in queues if t.startswith("validate_")}
        assert {t for t, queue in queues.items() if queue == "spark"} == spark_bound
        assert {queues[t] for t in set(queues) - spark_bound} == {"default"}


def test_a_retrain_closes_its_request_whatever_happened_upstream(dagbag):
    dag = dagbag.dags["card_fraud_retrain"]
    assert dag.get_task("train").downstream_task_ids == {"register"}
    close = dag.get_task("close_retrain_request")
    assert close.upstream_task_ids == {"register"} and close.is_teardown and not close.on_failure_fail_dagrun
    assert close.trigger_rule == "all_done_setup_success"  # with no setup: once register is done, however it ended


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_parsing_touches_no_database_and_imports_nothing_heavy(dag_file):
    parsed = parse_in_isolation(dag_file)
    assert parsed["errors"] == {}
    assert parsed["dags"], f"{dag_file.name} defines no DAG"
    heavy = sorted(set(parsed["modules"]) & set(HEAVY))
    assert heavy == [], f"{dag_file.name} imports {heavy} at parse time; import them inside task bodies"


def test_a_pipeline_schedule_comes_from_its_spec_and_names_its_dates(dagbag):
    import pendulum
    from airflow.timetables.base import DataInterval, TimeRestriction
    from airflow.utils.types import DagRunType

    from loopline_airflow.timetables import IntervalTimetable

    monthly = dagbag.dags["bike_demand_nightly"].timetable
    assert isinstance(monthly, IntervalTimetable) and monthly._expression == "0 0 1 * *"
    assert isinstance(dagbag.dags["card_fraud_nightly"].timetable, IntervalTimetable)
    february = DataInterval(pendulum.datetime(2011, 2, 1, tz="UTC"), pendulum.datetime(2011, 3, 1, tz="UTC"))
    assert monthly.generate_run_id(run_type=DagRunType.SCHEDULED, run_after=february.end, data_interval=february) \
        == "scheduled__2011-02-01..2011-02-28"
    restriction = TimeRestriction(pendulum.datetime(2011, 1, 1, tz="UTC"), None, catchup=True)
    last = DataInterval(pendulum.datetime(2012, 12, 1, tz="UTC"), pendulum.datetime(2013, 1, 1, tz="UTC"))
    assert monthly.next_dagrun_info(last_automated_data_interval=february, restriction=restriction).logical_date \
        == pendulum.datetime(2011, 3, 1, tz="UTC")
    assert monthly.next_dagrun_info(last_automated_data_interval=last, restriction=restriction) is None  # end_date
    assert IntervalTimetable.deserialize(monthly.serialize())._end == monthly._end


@pytest.mark.parametrize("dag_id", ["loopline_rollback", "loopline_tier_copy"])
def test_a_form_offers_only_known_pipelines(dagbag, dag_id):
    import copy

    from airflow.sdk.exceptions import ParamValidationError

    form = copy.deepcopy(dagbag.dags[dag_id].params)
    assert {"card_fraud", "bike_demand"} <= set(form.get_param("pipeline").schema["enum"])
    form["pipeline"] = "bike_demand"
    for bad in ("../x", "a;drop", "", "card_fraud/../../etc", "no_such_pipeline"):
        with pytest.raises(ParamValidationError, match="pipeline"):
            form["pipeline"] = bad


def test_a_stage_outcome_is_json_even_with_nan_scores():
    """XCom is JSON: a gate decision whose candidate failed its smoke test has a NaN score."""
    from loopline.release.registry import GateDecision
    from loopline_airflow.stages import outcome

    refused = GateDecision(9, False, "smoke test failed", "rmse", float("nan"), 8, None)
    assert json.loads(json.dumps(outcome(refused), allow_nan=False))["candidate_score"] is None
