"""The cluster profile (LOOPLINE_PROFILE=cluster, `make test-cluster`): the same DAGs, specs and
contracts on three Kafka brokers, a Spark standalone master with two workers, and Airflow's
CeleryExecutor with two workers, one of them for the `spark` queue.

- The demo's nightly loop runs through the real scheduler. Every task ran on the Celery worker
  of its queue (Airflow's records), and Spark's work ran on both standalone workers' executors
  (the master's application list, and each executor's log).
- A broker stopped in the middle of an ingest run: the run completes, every record lands once.
- A Spark worker stopped during scoring: Spark carries on with the other worker's executor, and
  the date's outputs equal an undisturbed run's.
"""
from __future__ import annotations

import base64
import os
import subprocess
import sys
import threading
import time
from datetime import date, datetime, timezone

import jwt
import pytest
import requests

from card_fraud_simulator import SimulationConfig, produce
from lake_audit import assert_exactly_once
from loopline.core import db
from loopline.core.config import REPOSITORY
from loopline.core.pipeline import Pipeline
from loopline.ingest.streaming import ingest_pipeline
from scoring_drill import Outage, assert_same_outputs, attempt, outputs, scored_pipeline, undisturbed_outputs
from stack_access import run_stack, stack

pytestmark = pytest.mark.cluster
WORKERS = ("spark-worker-1", "spark-worker-2")
CELERY_WORKER_OF_QUEUE = {"default": "airflow-celery-worker-1", "spark": "airflow-celery-worker-2"}
ROWS_TO_SCORE = 100_000  # enough that a worker stopped once scoring writes meets work in flight


@pytest.fixture(scope="module", autouse=True)
def cluster_profile() -> dict[str, str]:
    env = stack.load_env()
    if env.get("LOOPLINE_PROFILE") != "cluster":
        pytest.fail("these tests need a stack of the cluster profile: run `make test-cluster`")
    return env


def spark_master_state(env: dict[str, str]) -> dict:
    """The master's application and worker list (its web UI's JSON), with the JWT its UI requires."""
    key = base64.urlsafe_b64decode(stack.spark_ui_key(env) + "=")
    token = jwt.encode({"sub": "loopline-test"}, key, algorithm="HS256")
    url = f"http://127.0.0.1:{env['LOOPLINE_SPARK_MASTER_UI_PORT']}/json/"
    assert requests.get(url, timeout=10).status_code == 403  # no token, no answer
    response = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    response.raise_for_status()
    return response.json()


def finished_tasks(worker: str) -> int:
    """Spark tasks the worker's executors finished (their logs), over every application."""
    logs = (stack.STATE / "spark" / worker).glob("app-*/*/stderr")
    return sum(log.read_text(errors="replace").count("Executor: Finished task") for log in logs)


@pytest.fixture(scope="module")
def demo_week(cluster_profile):
    """`make demo`'s loop (card_fraud, a week of nightly runs and the retraining they trigger)
    through the scheduler, and the executors' work before and after it."""
    started = datetime.now(timezone.utc)
    before = {worker: finished_tasks(worker) for worker in WORKERS}
    demo = subprocess.run([sys.executable, str(REPOSITORY / "infra" / "demo.py")], cwd=REPOSITORY,
                          env={**os.environ, "PIPELINE": "card_fraud"}, capture_output=True, text=True, timeout=3600)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    return started, before, demo.stdout


def test_the_nightly_loop_runs_through_the_scheduler_on_the_celery_workers_of_each_queue(demo_week):
    started, _, printed = demo_week
    assert "Nightly runs: 7/7 succeeded" in printed
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        ran = session.execute(select(TaskInstance.dag_id, TaskInstance.task_id, TaskInstance.queue,
                                     TaskInstance.hostname).where(TaskInstance.dag_id.like("card_fraud_%"),
                                                                  TaskInstance.state == "success",
                                                                  TaskInstance.start_date >= started)).all()
    assert {task for dag, task, _, _ in ran if dag == "card_fraud_nightly"} >= {
        "ingest", "validate_bronze_events", "validate_bronze_labels", "train", "register", "score", "monitor"}
    for dag, task, queue, hostname in ran:
        assert hostname.startswith(f"{CELERY_WORKER_OF_QUEUE[queue]}@"), (dag, task, queue, hostname)
    queues = {task: queue for _, task, queue, _ in ran}
    assert {queues[t] for t in ("ingest", "validate_bronze_events", "score", "monitor")} == {"spark"}
    assert {queues[t] for t in ("train", "register", "check_feedback")} == {"default"}


def test_the_loops_spark_work_ran_on_both_standalone_workers(demo_week, cluster_profile):
    _, before, _ = demo_week
    state = spark_master_state(cluster_profile)
    assert sorted(w["port"] for w in state["workers"] if w["state"] == "ALIVE") == sorted(
        int(cluster_profile[f"LOOPLINE_SPARK_WORKER_{n}_PORT"]) for n in (1, 2))
    connect = [app for app in state["activeapps"] if app["name"] == "loopline-spark-connect"]
    assert len(connect) == 1 and connect[0]["state"] == "RUNNING" and connect[0]["cores"] == 2, state["activeapps"]
    for worker in WORKERS:
        assert finished_tasks(worker) > before[worker], f"{worker}'s executors ran none of the loop's Spark tasks"
    p = Pipeline.load("card_fraud")
    assert p.spark().conf.get("spark.master") == cluster_profile["LOOPLINE_SPARK_MASTER"]


def test_topics_have_three_replicas_and_a_write_needs_two(make_pipeline):
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    p = Pipeline.load(make_pipeline())
    topics = [source.topic for source in p.spec.sources.values()] + [p.spec.predictions_topic]
    admin = KafkaAdminClient(**p.settings.kafka("admin").python())
    try:
        described = admin.describe_topics(topics)
        configs = next(iter(admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in topics])
                            .values()))
    finally:
        admin.close()
    for topic in described:
        assert all(len(part["replica_nodes"]) == 3 and len(part["isr_nodes"]) == 3 for part in topic["partitions"]), topic
    assert {configs[t]["min.insync.replicas"]["value"] for t in topics} == {"2"}


def partition_leader(p: Pipeline, topic: str) -> int:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(**p.settings.kafka("admin").python())
    try:
        partitions = admin.describe_topics([topic])[0]["partitions"]
        return next(part["leader_id"] for part in partitions if part["partition_index"] == 0)
    finally:
        admin.close()


def ingest_batches(p: Pipeline) -> int:
    with db.connect(p.settings.db_url) as conn:
        return db.fetch_all(conn, "SELECT count(*) AS n FROM loopline.ingest_batches WHERE pipeline=%s",
                            (p.spec.name,))[0]["n"]


def test_a_broker_stopped_in_the_middle_of_an_ingest_run_the_run_completes_and_lands_each_record_once(make_pipeline):
    p = Pipeline.load(make_pipeline(ingest={"max_records_per_batch": 800}))
    days = [date(2026, 7, 1), date(2026, 7, 2)]
    produce(SimulationConfig(seed=33, transactions_per_day=2500, malformed_rate=0.01, world_start=days[0]), days,
            p.settings.kafka("producer"), {k: s.topic for k, s in p.spec.sources.items()})
    broker = f"kafka-{partition_leader(p, p.spec.entity_source.topic)}"  # the leader of what is being read
    result: dict = {}

    def run() -> None:
        try:
            result["runs"] = ingest_pipeline(p.spark(), p, "cluster_broker_failover", days[-1])
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            result["error"] = error

    ingest = threading.Thread(target=run)
    ingest.start()
    deadline = time.monotonic() + 300
    while ingest_batches(p) == 0 and ingest.is_alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    landed_before_the_stop = ingest_batches(p)
    assert ingest.is_alive(), "the run finished before the broker could be stopped: the test proved nothing"
    run_stack("stop", broker)
    try:
        ingest.join(timeout=900)
    finally:
        run_stack("start", broker)
    assert not ingest.is_alive() and "error" not in result, result.get("error")
    assert ingest_batches(p) > landed_before_the_stop, "no batch landed after the broker stopped"
    assert all(run.consumed == run.accepted + run.quarantined for run in result["runs"].values())
    for source in p.spec.sources.values():
        assert assert_exactly_once(p, source) > 0


@pytest.fixture(scope="module")
def undisturbed_scoring(make_pipeline) -> dict:
    return undisturbed_outputs(make_pipeline, ROWS_TO_SCORE)


def test_a_spark_worker_stopped_during_scoring_the_work_moves_and_outputs_equal_an_undisturbed_run(
        make_pipeline, undisturbed_scoring):
    p = scored_pipeline(make_pipeline, ROWS_TO_SCORE)
    driver_log = stack.LOGS / "spark-connect.log"
    seen = len(driver_log.read_text(errors="replace"))
    outage = Outage(p, "spark-worker-1", seconds=30)
    outage.start()
    scored = attempt(p)
    ended = time.monotonic()
    outage.join()
    assert outage.stopped_at is not None and outage.stopped_at < ended, "the worker was stopped after scoring ended"
    assert scored.returncode == 0, scored.stderr[-3000:]  # one attempt: Spark itself moved the work
    driver_said = driver_log.read_text(errors="replace")[seen:]
    assert "Lost executor" in driver_said, "the driver did not see the worker's executor go"
    # A task was running on it: Spark ran that task again on the other worker's executor.
    assert "ExecutorLostFailure" in driver_said, "the worker stopped between tasks: no work in flight was moved"
    got = outputs(p)
    assert_same_outputs(got, undisturbed_scoring)
