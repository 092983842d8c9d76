"""The nightly loop end to end on the real services, through the nightly DAG's own wiring.

It runs for each pipeline of the spec matrix: a copy of card_fraud (features from its
feature module), and the renamed pipeline (every source, field, dataset, topic and suite
named otherwise; declared features with learned vocabularies). Five simulated days (drift
from day 5) run with dag.test(); then one day is rerun and one day with a broken batch is
run. Assertions read the real outcomes: Kafka offsets, Parquet in the lake, rows in
PostgreSQL, versions and aliases in the MLflow registry, asset events in the Airflow
metadata DB. A failure names the pipeline (the test id) and the stage.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone

import pyarrow.parquet as pq
import pytest
import requests

import card_fraud_simulator
import renamed_pipeline
from card_fraud_simulator import SimulationConfig, messages_for_day
from lake_audit import assert_exactly_once, topic_messages
from loopline.core.config import Settings
from loopline.core.pipeline import Pipeline

FIRST = date(2026, 3, 1)
DAYS = [FIRST + timedelta(days=i) for i in range(5)]
DRIFT_FROM = DAYS[-1]
BROKEN_DAY = date(2026, 3, 10)
PER_DAY = 1500
SIM = SimulationConfig(seed=11, transactions_per_day=PER_DAY, drift_from=DRIFT_FROM, malformed_rate=0.004,
                       invalid_rate=0.004, world_start=FIRST)


def run_day(dag, day: date):
    return dag.test(logical_date=datetime.combine(day, datetime.min.time(), tzinfo=timezone.utc))


def states(dag_run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in dag_run.get_task_instances()}


def asset_events(asset_name: str) -> list[dict]:
    """The extras of an asset's events, oldest first (from the Airflow metadata DB)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return list(session.scalars(select(AssetEvent.extra).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                                    .where(AssetModel.name == asset_name).order_by(AssetEvent.id)))


def retrain_events(pipeline: str) -> int:
    return len(asset_events(f"{pipeline}_retrain_request"))


def rows_at(location) -> int:
    return pq.read_table(location.arrow_path, filesystem=location.filesystem()).num_rows if location.exists() else 0


def predictions_snapshot(db_url: str, pipeline: str, day: date) -> list[tuple]:
    from loopline.core import db

    with db.connect(db_url) as conn:
        return [tuple(r.values()) for r in db.fetch_all(
            conn, "SELECT prediction_id, prediction, model_version FROM loopline.predictions "
                  "WHERE pipeline=%s AND score_date=%s ORDER BY prediction_id", (pipeline, day))]


FIELDS_OF: dict[str, dict[str, str]] = {}  # pipeline -> how its fields are named in card_fraud's simulator


def send(p: Pipeline, config: SimulationConfig, days: list[date]) -> None:
    """Simulated days to the pipeline's topics, in its own field names."""
    renamed_pipeline.produce(config, days, Settings.from_env().kafka("producer"), card_fraud_simulator.topics_of(p.spec),
                             FIELDS_OF[p.spec.name])


@pytest.fixture(scope="module", params=["card_fraud", "renamed"])
def loop(request, make_pipeline, dag_for):
    """Simulate and run the five days once per pipeline; tests below inspect what happened."""
    name = make_pipeline() if request.param == "card_fraud" else make_pipeline.renamed()
    FIELDS_OF[name] = {} if request.param == "card_fraud" else renamed_pipeline.FIELDS
    p = Pipeline.load(name)
    send(p, SIM, DAYS)
    dag = dag_for(name)
    outcome = {}
    for day in DAYS:
        before = retrain_events(name)
        dag_run = run_day(dag, day)
        outcome[day] = {"state": dag_run.state, "tasks": states(dag_run),
                        "retrain_events": retrain_events(name) - before}
    return p, dag, outcome


def test_every_day_succeeds_with_cold_start_skips(loop):
    _, _, outcome = loop
    assert all(o["state"] == "success" for o in outcome.values()), outcome
    assert outcome[DAYS[0]]["tasks"]["train"] == "skipped"  # no labels yet on the first day
    assert all(o["tasks"]["check_feedback"] == "success" for o in outcome.values())
    assert outcome[DAYS[-1]]["tasks"]["score"] == "success"


def test_every_produced_record_landed_once_in_its_event_date_partition(loop):
    p, _, _ = loop
    from loopline.core import db

    entities, valid = p.spec.entity_source.dataset, p.spec.entity_dataset
    for source in p.spec.sources.values():
        assert_exactly_once(p, source)
    malformed = round(PER_DAY * SIM.malformed_rate)
    for day in DAYS:
        produced = sum(m.topic_kind == "events" for m in messages_for_day(SIM, day))
        bronze = rows_at(p.lake.location(entities, day))
        assert bronze == produced - malformed, day
        accepted = rows_at(p.lake.location(valid, day))
        refused = rows_at(p.lake.location("quarantine", day, subdir=valid))  # by the contract's row rules
        assert accepted + refused == bronze and refused == round(PER_DAY * SIM.invalid_rate), day
    # a malformed record is filed under its event date when readable, else under its run's date
    assert sum(rows_at(p.lake.location("quarantine", day, subdir=entities)) for day in DAYS) == len(DAYS) * malformed
    with db.connect(p.settings.db_url) as conn:
        runs = db.fetch_all(conn, "SELECT * FROM loopline.ingest_runs WHERE pipeline=%s AND dataset=%s",
                            (p.spec.name, entities))
    assert all(r["reconciled"] and r["consumed"] == r["accepted"] + r["quarantined"] for r in runs)
    assert sum(r["consumed"] for r in runs) == sum(
        sum(m.topic_kind == "events" for m in messages_for_day(SIM, day)) for day in DAYS)
    ingested = asset_events(f"{p.spec.name}_bronze")  # one event per ingest run, counts in its extra
    assert len(ingested) >= len(DAYS)
    assert sum(e["sources"][p.spec.task.entities]["consumed"] for e in ingested) == sum(r["consumed"] for r in runs)


def test_a_champion_is_registered(loop):
    p, _, _ = loop
    from mlflow import MlflowClient

    champion = MlflowClient().get_model_version_by_alias(p.spec.model_name, "champion")
    assert int(champion.version) >= 1
    assert champion.tags.get("gate_decision")
    from loopline.models.aliases import history

    promotions = [h for h in history(p.settings.db_url, p.spec.model_name) if h["alias"] == "champion"]
    assert promotions[-1]["to_version"] == int(champion.version)  # every move is in the audit trail
    assert all(h["dag_id"] == f"{p.spec.name}_nightly" and h["run_id"] and h["reason"].startswith("gate: ")
               for h in promotions)


def test_every_registered_version_has_a_model_card(loop):
    import mlflow
    from mlflow import MlflowClient

    from loopline.release.model_card import HTML, MARKDOWN

    p, _, _ = loop
    versions = MlflowClient().search_model_versions(f"name='{p.spec.name}'")
    assert versions
    for version in versions:
        card = mlflow.artifacts.load_text(f"models:/{p.spec.name}/{version.version}/{MARKDOWN}")
        assert card.startswith(f"# Model card: {p.spec.name} v{version.version}\n")
        assert version.tags["gate_decision"] in card
        assert f"| {p.spec.entity_dataset} | {p.spec.entity_source.topic} |" in card  # Kafka offsets behind the data
        assert f"| {p.spec.entity_source.dataset} |" in card and "[GX report](" in card  # contract results
        assert "<table>" in mlflow.artifacts.load_text(f"models:/{p.spec.name}/{version.version}/{HTML}")
        assert version.description.startswith(f"# Model card: {p.spec.name} v{version.version}")


def test_predictions_in_postgres_equal_valid_rows_of_the_date(loop):
    p, _, outcome = loop
    for day in DAYS:
        if outcome[day]["tasks"]["score"] != "success":
            continue
        valid = p.lake.location(p.spec.entity_dataset, day)
        bronze = pq.read_table(valid.arrow_path, filesystem=valid.filesystem()).column(p.spec.entity_source.key)
        predicted = {row[0] for row in predictions_snapshot(p.settings.db_url, p.spec.name, day)}
        assert predicted == {f"{p.spec.name}:{t}" for t in bronze.to_pylist()}, day
        on_object_store = p.lake.location("predictions", day)  # the spec places predictions on `cloud`
        assert on_object_store.spark_uri.startswith("s3a://") and rows_at(on_object_store) == len(bronze), day
    assert sum(o["tasks"]["score"] == "success" for o in outcome.values()) >= 2


def test_each_prediction_is_published_once_to_the_predictions_topic(loop):
    p, _, _ = loop
    from loopline.core import db

    messages = topic_messages(p.settings.kafka("reader"), p.spec.predictions_topic)
    keys = [key.decode() for key, _ in messages]
    with db.connect(p.settings.db_url) as conn:
        stored = {r["prediction_id"]: r for r in db.fetch_all(
            conn, "SELECT prediction_id, model_version, prediction FROM loopline.predictions WHERE pipeline=%s",
            (p.spec.name,))}
    assert len(keys) == len(set(keys)) and set(keys) == set(stored)
    for key, value in messages[:50]:
        sent = json.loads(value)
        row = stored[key.decode()]
        assert (sent["model_version"], sent["prediction"]) == (row["model_version"], row["prediction"])


def test_retraining_is_requested_on_the_drift_day_only(loop):
    p, _, outcome = loop
    assert outcome[DRIFT_FROM]["retrain_events"] == 1
    assert asset_events(f"{p.spec.name}_retrain_request")[-1]["reasons"] == ["feature_drift"]
    assert all(outcome[d]["retrain_events"] == 0 for d in DAYS if d != DRIFT_FROM)
    assert outcome[DAYS[-2]]["tasks"]["request_retraining"] == "skipped"


def test_rerunning_a_date_changes_nothing(loop):
    """Rerun the first trained day after a newer champion exists: the date keeps its own gate
    decision and scoring model, no alias moves, no version is added."""
    p, dag, outcome = loop
    from mlflow import MlflowClient

    day = next(d for d in DAYS if outcome[d]["tasks"]["train"] == "success")
    client = MlflowClient()
    versions = lambda: sorted(int(v.version) for v in client.search_model_versions(f"name='{p.spec.name}'"))  # noqa: E731
    original_champion = client.get_model_version_by_alias(p.spec.name, "champion").version
    newest = str(versions()[-1])
    client.set_registered_model_alias(p.spec.name, "champion", newest)  # as if a later day had promoted it
    try:
        published = lambda: len(topic_messages(p.settings.kafka("reader"), p.spec.predictions_topic))  # noqa: E731
        before = (predictions_snapshot(p.settings.db_url, p.spec.name, day), versions(),
                  rows_at(p.lake.location(p.spec.entity_source.dataset, day)), published())
        assert newest != str(before[0][0][2]), "setup: the date must have been scored by an older version"
        assert run_day(dag, day).state == "success"
        after = (predictions_snapshot(p.settings.db_url, p.spec.name, day), versions(),
                 rows_at(p.lake.location(p.spec.entity_source.dataset, day)), published())
        assert after == before
        assert client.get_model_version_by_alias(p.spec.name, "champion").version == newest
    finally:
        client.set_registered_model_alias(p.spec.name, "champion", original_champion)


def task_xcoms(dag_id: str, run_id: str, task_id: str) -> dict:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(select(XComModel.key, XComModel.value).where(
            XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.task_id == task_id)).all()
    return dict(rows)


@pytest.fixture
def webhook(http_endpoint, monkeypatch):
    """The webhook alert channel, pointed at a real HTTP endpoint on localhost."""
    url, received = http_endpoint
    monkeypatch.setenv("LOOPLINE_ALERT_WEBHOOK_URL", url)
    return received


def test_a_broken_batch_stops_the_line_alerts_and_keeps_the_champion(loop, webhook):
    p, dag, _ = loop
    from mlflow import MlflowClient

    client = MlflowClient()
    champion = client.get_model_version_by_alias(p.spec.name, "champion").version
    tiny = SimulationConfig(seed=3, transactions_per_day=40, world_start=BROKEN_DAY)  # far below the volume rule
    send(p, tiny, [BROKEN_DAY])
    dag_run = run_day(dag, BROKEN_DAY)
    tasks, entities = states(dag_run), p.spec.entity_source.dataset
    assert dag_run.state == "failed"
    assert tasks[f"validate_{entities}"] == "failed"
    assert {tasks[t] for t in ("check_feedback", "train", "register", "score", "monitor")} == {"upstream_failed"}
    assert client.get_model_version_by_alias(p.spec.name, "champion").version == champion
    [alert] = webhook
    assert alert["subject"].endswith(entities) and "volume" in alert["summary"]
    assert alert["logical_date"] == str(BROKEN_DAY)
    xcoms = task_xcoms(dag.dag_id, dag_run.run_id, f"validate_{entities}")
    assert xcoms["contract_report_url"] == alert["report_url"]
    assert xcoms["_link_ContractReportLink"] == alert["report_url"]  # the task's "Contract report" button
    base = os.environ["AIRFLOW__API__BASE_URL"].rstrip("/")
    assert alert["report_url"] == f"{base}/loopline/pipelines/{p.spec.name}/reports/contract/{entities}/{BROKEN_DAY}/"
    anonymous = requests.get(alert["report_url"], timeout=30, allow_redirects=False)
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["location"]  # behind Airflow's login


def test_spark_job_entry_points_rerun_a_date_with_the_same_outcome(loop):
    """spark_jobs/ run the same code as the tasks; rerunning a date through them changes nothing."""
    import subprocess
    import sys
    from pathlib import Path

    p, _, _ = loop
    repo = Path(__file__).resolve().parents[2]
    day = DAYS[-1]
    bronze_before = rows_at(p.lake.location(p.spec.entity_source.dataset, day))
    before = predictions_snapshot(p.settings.db_url, p.spec.name, day)
    outputs = {}
    for job in ("ingest", "score"):
        done = subprocess.run([sys.executable, str(repo / "spark_jobs" / f"{job}.py"), "--pipeline", p.spec.name,
                               "--date", day.isoformat()], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        outputs[job] = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    events = next(r for r in outputs["ingest"] if r["dataset"] == p.spec.entity_source.dataset)
    assert events["consumed"] == 0  # everything was ingested already: nothing is read twice
    for source in p.spec.sources.values():
        assert_exactly_once(p, source)
    assert outputs["score"][0]["rows"] == len(before)
    assert outputs["score"][0]["published"] == 0  # the date's predictions are on the topic already
    assert predictions_snapshot(p.settings.db_url, p.spec.name, day) == before
    assert rows_at(p.lake.location(p.spec.entity_source.dataset, day)) == bronze_before


# --- the operating recipes of docs/authoring.md, as written ------------------------------

# The recipes' forms and the model store's check name no field of a pipeline, and the renamed
# pipeline's loop above already runs the same tasks: these run for card_fraud alone (CI time).
card_fraud_only = pytest.mark.parametrize("loop", ["card_fraud"], indirect=True)

def run_form(dag, conf: dict):
    """A run triggered by hand with the DAG's form (`conf`), as the Airflow UI does. (Pass a
    freshly built DAG: dag.test() keeps a run's params on the DAG object.)"""
    return dag.test(logical_date=datetime.now(timezone.utc), run_conf=conf)


@card_fraud_only
def test_recipe_process_dates_by_hand_without_retraining(loop, dag_for):
    """The nightly form: given dates, `retrain` off: ingest, validate and score only."""
    p, _, _ = loop
    day = DAYS[-1]
    before = predictions_snapshot(p.settings.db_url, p.spec.name, day)
    dag_run = run_form(dag_for(p.spec.name), {"first_date": day.isoformat(), "last_date": day.isoformat(),
                                              "retrain": False})
    tasks = states(dag_run)
    assert dag_run.state == "success", tasks
    assert (tasks["train"], tasks["register"], tasks["score"]) == ("skipped", "skipped", "success")
    assert predictions_snapshot(p.settings.db_url, p.spec.name, day) == before  # same interval, same result


def test_recipe_retrain_by_hand_with_the_form(loop, dag_for):
    """The retraining DAG's form: no asset event needed; labels known on a date, a window, a reason."""
    p, _, _ = loop
    from loopline.core import db

    dag_run = run_form(dag_for(p.spec.name, "retrain"),
                       {"last_date": DAYS[-1].isoformat(), "window_days": 4, "reason": "recipe test"})
    assert dag_run.state == "success", states(dag_run)
    with db.connect(p.settings.db_url) as conn:
        [row] = db.fetch_all(conn, "SELECT * FROM loopline.training_runs WHERE pipeline = %s AND dag_id = %s",
                             (p.spec.name, f"{p.spec.name}_retrain"))
    assert row["logical_date"] == DAYS[-1] and row["decision"]


@card_fraud_only
def test_recipe_add_a_day_of_traffic_then_process_it(loop, dag_for):
    """`python include/pipelines/card_fraud_simulator.py --from D`, then the nightly form for D."""
    import subprocess
    import sys
    from pathlib import Path

    p, _, _ = loop
    day = DAYS[-1] + timedelta(days=1)
    simulator = Path(__file__).resolve().parents[2] / "include" / "pipelines" / "card_fraud_simulator.py"
    sent = subprocess.run([sys.executable, str(simulator), "--pipeline", p.spec.name, "--from", day.isoformat(),
                           "--seed", str(SIM.seed), "--world-start", FIRST.isoformat(), "--per-day",
                           str(PER_DAY)], capture_output=True, text=True, timeout=300)
    assert sent.returncode == 0, sent.stderr[-2000:]
    dag_run = run_form(dag_for(p.spec.name), {"first_date": day.isoformat()})
    assert dag_run.state == "success", states(dag_run)
    assert len(predictions_snapshot(p.settings.db_url, p.spec.name, day)) > 0.9 * PER_DAY


# --- models you can trust -----------------------------------------------------------------

@contextmanager
def changed_in_the_object_store(p: Pipeline, versions: set[int]):
    """Append a line to the MLmodel file of each version's logged model, straight in the
    bucket (as someone with the S3 keys could); put the files back afterwards."""
    import boto3
    from mlflow import MlflowClient

    client, s3 = MlflowClient(), boto3.client("s3", endpoint_url=p.settings.s3_endpoint)
    originals = {}
    for version in versions:
        model_id = client.get_model_version(p.spec.model_name, str(version)).source.removeprefix("models:/")
        location = client.get_logged_model(model_id).artifact_location.removeprefix("mlflow-artifacts:/")
        key = f"mlflow-artifacts/{location.strip('/')}/MLmodel"
        originals[key] = s3.get_object(Bucket=p.settings.s3_bucket, Key=key)["Body"].read()
    try:
        for key, body in originals.items():
            s3.put_object(Bucket=p.settings.s3_bucket, Key=key, Body=body + b"\n# changed after registration\n")
        yield
    finally:
        for key, body in originals.items():
            s3.put_object(Bucket=p.settings.s3_bucket, Key=key, Body=body)


@card_fraud_only
def test_a_model_changed_in_the_object_store_is_refused_with_an_alert(loop, dag_for, webhook):
    from mlflow import MlflowClient

    from loopline.core.interval import Interval
    from loopline.models.store import TamperedModelError
    from loopline.scoring.score import recorded_version, score

    p, _, _ = loop
    client, day = MlflowClient(), DAYS[-1]
    champion = client.get_model_version_by_alias(p.spec.model_name, "champion").version
    scored_by = recorded_version(p.settings.db_url, p.spec.name, day)
    before = predictions_snapshot(p.settings.db_url, p.spec.name, day)
    with changed_in_the_object_store(p, {int(champion), scored_by}):
        nightly = run_form(dag_for(p.spec.name), {"first_date": day.isoformat(), "retrain": False})
        with pytest.raises(TamperedModelError, match="MLmodel changed"):
            score(p, Interval.of_day(day), scored_by)
        retrain = run_form(dag_for(p.spec.name, "retrain"),
                           {"last_date": day.isoformat(), "window_days": 5, "reason": "a changed champion"})
    tasks = states(nightly)
    assert nightly.state == "failed" and tasks["score"] != "success", tasks
    assert {t for t, state in tasks.items() if state == "failed"} <= {"check_feedback", "score"}
    assert retrain.state == "failed" and states(retrain)["register"] == "failed", states(retrain)
    assert predictions_snapshot(p.settings.db_url, p.spec.name, day) == before
    assert client.get_model_version_by_alias(p.spec.model_name, "champion").version == champion
    assert [a["subject"] for a in webhook] == ["model refused, its files changed since registration"] * 2
    assert all("MLmodel changed" in a["summary"] for a in webhook)


def test_no_generated_secret_is_in_a_task_log_or_an_mlflow_run(loop):
    """After the loop: its task logs, and the params and tags of its training runs, hold none of
    the secrets `make setup` generated."""
    from pathlib import Path

    from mlflow import MlflowClient

    from stack_access import generated_secrets

    p, _, _ = loop
    logs = [f for f in (Path(os.environ["AIRFLOW_HOME"]) / "logs").rglob("*") if f.is_file()]
    assert logs
    texts = [f.read_text(errors="replace") for f in logs]
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name(p.spec.name).experiment_id])
    assert runs
    recorded = " ".join(f"{k}={v}" for r in runs for k, v in {**r.data.params, **r.data.tags}.items())
    for key, value in generated_secrets().items():
        assert not [f for f, text in zip(logs, texts) if value in text], f"{key} is in a task log"
        assert value not in recorded, f"{key} is in an MLflow param or tag"


# --- the loop, seen in the loop view (a real headless Chromium, logged in as a viewer) ----

@pytest.fixture(scope="module")
def browser():
    from browser import Browser
    from stack_access import stack

    opened = Browser()
    opened.log_in("viewer", stack.read_env_file()["AIRFLOW_VIEWER_PASSWORD"], then="/loopline/")
    yield opened
    opened.close()


def recorded(p: Pipeline, sql: str) -> list[dict]:
    from loopline.core import db

    with db.connect(p.settings.db_url) as conn:
        return db.fetch_all(conn, sql, {"p": p.spec.name})


def chart_series(browser, chart: str) -> dict:
    """What an ECharts chart of the page draws: its axes' categories, each series' data, and
    how many SVG elements it put on the page."""
    return browser.script("""
        const element = document.getElementById(arguments[0]);
        const option = echarts.getInstanceByDom(element).getOption();
        return {x: option.xAxis[0].data, y: option.yAxis[0].data || null,
                series: Object.fromEntries(option.series.map((s) => [s.name, s.data])),
                drawn: element.querySelectorAll("svg path, svg rect").length};""", chart)


def test_the_overview_shows_each_pipeline_as_postgresql_records_it(loop, browser, request):
    p, _, _ = loop
    row = f'tr[data-pipeline="{p.spec.name}"]'
    browser.open("/loopline/")
    browser.wait_for(row)
    [champion] = recorded(p, "SELECT to_version FROM loopline.alias_history WHERE pipeline = %(p)s "
                             "AND alias = 'champion' ORDER BY id DESC LIMIT 1")
    [contracts] = recorded(p, "SELECT count(*) FILTER (WHERE success) AS passed FROM (SELECT success FROM "
                              "loopline.contract_latest WHERE pipeline = %(p)s ORDER BY logical_date DESC LIMIT 30) r")
    [drift] = recorded(p, "SELECT max_psi FROM loopline.monitor_runs WHERE pipeline = %(p)s "
                          "ORDER BY logical_date DESC LIMIT 1")
    [alert] = recorded(p, "SELECT subject FROM loopline.alerts WHERE pipeline = %(p)s ORDER BY id DESC LIMIT 1")
    shown = lambda field: browser.texts(f'{row} [data-field="{field}"]')  # noqa: E731
    assert shown("champion-version") == [f"v{champion['to_version']}"]
    assert shown("contract-passed") == [str(contracts["passed"])]
    assert shown("max-psi") == [f"{drift['max_psi']:.3f}"]
    assert shown("last-alert") == [alert["subject"]]
    assert browser.console_errors() == []
    browser.screenshot(f"loop-view-overview-{request.node.callspec.id}")


def test_contract_reports_open_offline_with_the_outcome_in_loopline_terms(loop, browser, request):
    """Each kind of outcome's GX Data Docs, through the view: every asset from this server,
    every stylesheet applied, the outcome and its rules as PostgreSQL records them."""
    from selenium.webdriver.common.by import By

    p, _, _ = loop
    validations = recorded(p, "SELECT dataset, logical_date, success, rows_quarantined FROM loopline.contract_latest "
                              "WHERE pipeline = %(p)s ORDER BY logical_date")
    kinds = {"line stopped": [v for v in validations if not v["success"]],
             "rows quarantined": [v for v in validations if v["success"] and v["rows_quarantined"]]}
    for outcome, found in kinds.items():
        assert found, f"the loop has no validation whose outcome is {outcome}"
        shown = found[-1]
        browser.open(f"/loopline/pipelines/{p.spec.name}/reports/contract/{shown['dataset']}/{shown['logical_date']}/")
        assert "/validations/" in browser.driver.current_url  # the site's root leads to its validation page
        banner = browser.driver.find_element(By.ID, "loopline-outcome")
        assert banner.get_attribute("data-outcome") == outcome
        failed = recorded(p, f"""SELECT r.rule FROM loopline.contract_results r JOIN loopline.contract_latest v
            USING (pipeline, dataset, logical_date, run_id) WHERE r.pipeline = %(p)s AND NOT r.success
            AND r.dataset = '{shown['dataset']}' AND r.logical_date = '{shown['logical_date']}'
            AND r.severity = '{"batch" if outcome == "line stopped" else "row"}'""")
        assert sorted(b.text for b in banner.find_elements(By.CSS_SELECTOR, "b")[1:]) == sorted(r["rule"] for r in failed)
        loaded = browser.script("""return {
            resources: performance.getEntriesByType("resource").map((e) => e.name),
            sheets: [...document.styleSheets].filter((s) => s.href).map((s) => s.cssRules.length)};""")
        assert loaded["resources"] and all(url.startswith(browser.base) for url in loaded["resources"]), loaded
        assert len(loaded["sheets"]) >= 5 and all(loaded["sheets"]), loaded["sheets"]  # Bootstrap and the rest, read
        assert browser.console_errors() == []
        browser.screenshot(f"contract-report-{outcome.replace(' ', '-')}-{request.node.callspec.id}")


def test_the_pipeline_page_draws_the_whole_loop_from_postgresql(loop, browser, request):
    p, _, _ = loop
    browser.open(f"/loopline/pipelines/{p.spec.name}")
    browser.draw_every_chart()
    assert browser.console_errors() == []
    charts = {name: chart_series(browser, f"chart-{name}")
              for name in ("rows", "contracts", "drift", "predictions", "realised", "slices")}
    assert all(chart["drawn"] > 0 for chart in charts.values()), {n: c["drawn"] for n, c in charts.items()}

    accepted: dict[str, dict[str, int]] = {}  # rows per dataset and event date, summed from every batch
    for batch in recorded(p, "SELECT dataset, accepted_by_date FROM loopline.ingest_batches WHERE pipeline = %(p)s"):
        for day, rows in batch["accepted_by_date"].items():
            per_date = accepted.setdefault(batch["dataset"], {})
            per_date[day] = per_date.get(day, 0) + rows
    ingested = charts["rows"]
    assert {dataset: {d: n for d, n in zip(ingested["x"], ingested["series"][f"{dataset} · accepted at ingest"]) if n}
            for dataset in accepted} == accepted
    rejected = recorded(p, "SELECT dataset, logical_date, rows_quarantined FROM loopline.contract_latest "
                           "WHERE pipeline = %(p)s AND rows_quarantined > 0")
    assert rejected and all(ingested["series"][f"{r['dataset']} · rejected by contract"][
        ingested["x"].index(r["logical_date"].isoformat())] == r["rows_quarantined"] for r in rejected)

    psi = {(r["logical_date"].isoformat(), r["feature"]): r["psi"]
           for r in recorded(p, "SELECT logical_date, feature, psi FROM loopline.drift_metrics WHERE pipeline = %(p)s")}
    drift = charts["drift"]
    assert {(drift["x"][x], drift["y"][y]): value for x, y, value in drift["series"]["PSI"]} == psi
    requested = [r["logical_date"].isoformat() for r in recorded(
        p, "SELECT logical_date FROM loopline.monitor_runs WHERE pipeline = %(p)s AND retrain_requested")]
    assert sorted(drift["x"][x] for x, *_ in drift["series"]["retraining triggers"]) == sorted(requested)

    medians = recorded(p, "SELECT score_date, percentile_cont(0.5) WITHIN GROUP (ORDER BY prediction) AS median "
                          "FROM loopline.predictions WHERE pipeline = %(p)s GROUP BY score_date ORDER BY score_date")
    predictions = charts["predictions"]
    boxes = dict(zip(predictions["x"], predictions["series"]["5–95% (box: 25–75%)"]))
    assert {d: pytest.approx(box[2]) for d, box in boxes.items()} == {
        m["score_date"].isoformat(): m["median"] for m in medians if m["score_date"].isoformat() in boxes}
    assert len(boxes) >= 2

    rules = recorded(p, "SELECT r.success, r.severity FROM loopline.contract_results r JOIN loopline.contract_latest v "
                        "USING (pipeline, dataset, logical_date, run_id) WHERE r.pipeline = %(p)s")
    cells = charts["contracts"]["series"]["rule"]  # [date, rule, outcome, rows]: 0 passed, 1 rows quarantined, 3 stopped
    assert len(cells) == len(rules)
    assert sum(cell[2] == 1 for cell in cells) == sum(not r["success"] and r["severity"] == "row" for r in rules)
    assert sum(cell[2] == 3 for cell in cells) == sum(not r["success"] and r["severity"] == "batch" for r in rules) >= 1

    judged = recorded(p, "SELECT logical_date, champion_score FROM loopline.feedback_checks WHERE pipeline = %(p)s "
                         "AND champion_score IS NOT NULL ORDER BY logical_date")
    realised = charts["realised"]
    assert dict(zip(realised["x"], realised["series"]["champion (realised)"])) == {
        r["logical_date"].isoformat(): r["champion_score"] for r in judged}
    per_slice = recorded(p, """SELECT f.logical_date, s.key || ' = ' || (v->>'value') AS slice,
        (v->>'champion')::float AS champion FROM loopline.feedback_checks f, jsonb_each(f.slices) s,
        jsonb_array_elements(s.value) v WHERE f.pipeline = %(p)s AND v->>'champion' IS NOT NULL""")
    slices = charts["slices"]
    assert {(slices["x"][x], slices["y"][y]): score for x, y, score, *_ in slices["series"]["champion per slice"]} == {
        (r["logical_date"].isoformat(), r["slice"]): pytest.approx(r["champion"]) for r in per_slice}

    [counts] = recorded(p, """SELECT (SELECT count(*) FROM loopline.training_runs WHERE pipeline = %(p)s)
        + (SELECT count(*) FROM loopline.alias_history WHERE pipeline = %(p)s AND alias = 'champion')
        + (SELECT count(*) FROM loopline.retrain_requests WHERE pipeline = %(p)s) AS events""")
    assert len(browser.texts("#timeline tbody tr")) == counts["events"]
    browser.screenshot(f"loop-view-pipeline-{request.node.callspec.id}")


# --- the loop's metrics in Prometheus (StatsD → statsd_exporter → Prometheus) ------------

def prometheus_query(promql: str) -> list[dict]:
    answer = requests.get(f"{os.environ['LOOPLINE_PROMETHEUS_URL']}/api/v1/query", params={"query": promql},
                          auth=("loopline", os.environ["LOOPLINE_PROMETHEUS_PASSWORD"]), timeout=30)
    answer.raise_for_status()
    return answer.json()["data"]["result"]


def test_prometheus_answers_with_the_loops_metrics_as_postgresql_records_them(loop, browser, request):
    """The tasks' metrics reach Prometheus labelled with their pipeline, and each gauge holds
    the value the stage last stored: the PSI per feature, the rows the contracts rejected."""
    import time

    p, _, _ = loop
    latest_psi = {r["feature"]: r["psi"] for r in recorded(
        p, "SELECT DISTINCT ON (feature) feature, psi FROM loopline.drift_metrics WHERE pipeline = %(p)s "
           "ORDER BY feature, updated_at DESC")}
    latest_rejected = {r["dataset"]: r["rows_quarantined"] for r in recorded(
        p, "SELECT DISTINCT ON (dataset) dataset, rows_quarantined FROM loopline.contract_validations "
           "WHERE pipeline = %(p)s ORDER BY dataset, updated_at DESC")}
    deadline = time.monotonic() + 60  # Prometheus scrapes every 5 s
    while True:
        psi = {r["metric"]["feature"]: float(r["value"][1])
               for r in prometheus_query(f'loopline_feature_psi{{pipeline="{p.spec.name}"}}')}
        rejected = {r["metric"]["dataset"]: float(r["value"][1])
                    for r in prometheus_query(f'loopline_contract_rows_rejected{{pipeline="{p.spec.name}"}}')}
        if (psi, rejected) == (latest_psi, latest_rejected) or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert psi == pytest.approx(latest_psi) and rejected == latest_rejected
    assert prometheus_query(f'loopline_ingest_rows{{pipeline="{p.spec.name}"}}')  # the counters are there too
    browser.show_prometheus(f'loopline_feature_psi{{pipeline="{p.spec.name}"}}')
    shown = [text for text in browser.texts("td") if f'pipeline="{p.spec.name}"' in text]
    assert len(shown) == len(latest_psi)  # a row per feature in Prometheus's own console
    browser.screenshot(f"prometheus-{request.node.callspec.id}")


def test_the_drift_report_of_a_date_names_its_drifted_features_and_no_others(loop, browser, request):
    """Opened as a person would: through the monitor task's "Loopline evidence" link."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from loopline_airflow.evidence import EVIDENCE_KEY

    p, dag, _ = loop
    [drifted] = recorded(p, f"SELECT drifted_features FROM loopline.monitor_runs WHERE pipeline = %(p)s "
                            f"AND logical_date = '{DRIFT_FROM}'")
    assert drifted["drifted_features"], "setup: the drift day must have drifted features"
    with create_session() as session:
        links = set(session.scalars(select(XComModel.value).where(
            XComModel.dag_id == dag.dag_id, XComModel.task_id == "monitor", XComModel.key == EVIDENCE_KEY)))
    [link] = [url for url in links if url.endswith(f"/loopline/pipelines/{p.spec.name}/reports/drift/{DRIFT_FROM}")]
    browser.driver.get(link)
    assert browser.texts("#drifted-features") == [", ".join(drifted["drifted_features"])]
    assert browser.console_errors() == []
    browser.screenshot(f"drift-report-{request.node.callspec.id}")
    browser.open(f"/loopline/pipelines/{p.spec.name}/reports/drift/{DAYS[-2]}")
    assert browser.texts("#drifted-features") == []
    assert browser.texts("#verdict")[0].startswith("No feature drifted")
