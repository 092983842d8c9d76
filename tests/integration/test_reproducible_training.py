"""Training records what it learned from, and `loopline retrain --from-version N` repeats it.

Five labelled days are written to a throw-away pipeline's lake; real training runs on the
real MLflow server; the registered version is then retrained from its recorded inputs.
"""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from lifecycle_data import labelled, write_labelled_days
from loopline.core.pipeline import Pipeline
from loopline.core.run_artifacts import HOLDOUT_ARTIFACT, INPUTS_ARTIFACT
from loopline.training.reproduce import ReproductionError, retrain_from_version
from loopline.training.train import train

DAYS = [date(2026, 6, d) for d in range(1, 6)]
UNTIL = DAYS[-1] + timedelta(days=1)  # the last day's labels arrive the day after
REPO = Path(__file__).resolve().parents[2]


def trained_version(p: Pipeline) -> tuple[int, str]:
    from loopline.models.store import register_version

    write_labelled_days(p, labelled(DAYS, per_day=1500))
    result = train(p.spec, p.lake, p.settings.db_url, UNTIL, "test_reproduce")
    return register_version(p.settings.db_url, p.spec.name, result.model_uri, p.spec.model_name), result.run_id


@pytest.fixture(scope="module")
def lightgbm_version(make_pipeline):
    p = Pipeline.load(make_pipeline())
    return (p, *trained_version(p))


def test_training_the_same_date_again_reuses_its_run(lightgbm_version):
    p, _, run_id = lightgbm_version
    again = train(p.spec, p.lake, p.settings.db_url, UNTIL, "test_reproduce")
    assert again.reused and again.run_id == run_id


def test_the_run_records_its_data_model_and_code(lightgbm_version):
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import get_model_info

    p, version, run_id = lightgbm_version
    run = MlflowClient().get_run(run_id)
    inputs = json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/{INPUTS_ARTIFACT}"))
    assert {s: inputs["splits"][s]["event_dates"] for s in ("train", "validation", "holdout")} == {
        "train": ["2026-06-01", "2026-06-02", "2026-06-03"], "validation": ["2026-06-04"], "holdout": ["2026-06-05"]}
    assert run.data.params["model_type"] == "lightgbm" and run.data.params["seed"] == "7"
    assert {"roc_auc", "validation_roc_auc"} <= set(run.data.metrics)
    datasets = {tags["mlflow.data.context"]: tags
                for tags in ({t.key: t.value for t in i.tags} for i in run.inputs.dataset_inputs)}
    assert set(datasets) == {"train", "validation", "holdout"}
    holdout_tags = datasets["holdout"]
    assert holdout_tags["event_dates"] == "2026-06-05" and holdout_tags["rows"] == "1500"
    assert holdout_tags[f"offsets.{p.spec.entity_dataset}.{p.spec.entity_source.topic}"] == "0:0-1499"
    assert {o["dataset"] for o in inputs["kafka_offsets"]} == {"valid_events", "valid_labels"}
    assert len([q for q in inputs["partitions"] if q["dataset"] == "valid_events"]) == len(DAYS)
    assert run.data.tags["loopline.data_hash"] == inputs["data_hash"]
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert run.data.tags["mlflow.source.git.commit"] == commit.strip()
    info = get_model_info(f"models:/{p.spec.model_name}/{version}")
    assert info.signature is not None and "merchant_category" in info.signature.inputs.input_names()
    requirements = mlflow.artifacts.load_text(f"models:/{p.spec.model_name}/{version}/requirements.txt").split()
    assert all("==" in r for r in requirements) and any(r.startswith("lightgbm==") for r in requirements)
    holdout = pd.read_parquet(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=HOLDOUT_ARTIFACT))
    assert "customer_id" not in holdout.columns  # on-prem-only data never goes to the artifact store


def test_retrain_from_version_reproduces_the_metrics(lightgbm_version):
    p, version, run_id = lightgbm_version
    done = subprocess.run([sys.executable, "-m", "loopline.ops.cli", "retrain", "--pipeline", p.spec.name,
                           "--from-version", str(version)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert f"v{version} (run {run_id}) retrained as run" in done.stdout and "metrics REPRODUCED" in done.stdout
    assert "roc_auc" in done.stdout


def test_the_scikit_learn_baseline_trains_registers_scores_and_reproduces(make_pipeline):
    from loopline.core import db
    from loopline.core.interval import Interval
    from loopline.models.store import load_version
    from loopline.scoring.score import score

    p = Pipeline.load(make_pipeline(training={"model": "sklearn_logistic", "min_labelled_rows": 1000}))
    version, _ = trained_version(p)
    assert load_version(p.settings.db_url, p.spec.model_name, version).kind.name == "sklearn_logistic"
    assert score(p, Interval.of_day(DAYS[-1]), version).rows == 1500  # Spark scoring serves the baseline like any type
    with db.connect(p.settings.db_url) as conn:
        [row] = db.fetch_all(conn, "SELECT min(prediction) AS low, max(prediction) AS high "
                                   "FROM loopline.predictions WHERE pipeline = %s", (p.spec.name,))
    assert 0 <= row["low"] < row["high"] <= 1
    reproduction = retrain_from_version(p, version)
    assert reproduction.reproduced and reproduction.metrics["roc_auc"][0] > 0.7


def test_a_changed_lake_is_named_instead_of_silently_retraining_on_other_data(lightgbm_version):
    """Flip one label of the validation date in the lake: the recorded hash no longer matches."""
    from contract_data import write_bronze
    from lifecycle_data import LABELS_DDL
    from loopline.training.data import read_partitions

    p, version, _ = lightgbm_version
    label_day = date(2026, 6, 5)  # labels of the validation date (06-04) arrived on 06-05
    labels = read_partitions(p.lake, p.spec.valid_dataset("labels"), label_day)
    labels = labels[labels["date"] == label_day.isoformat()].drop(columns="date").reset_index(drop=True)
    labels.loc[0, "is_fraud"] = 1 - labels.loc[0, "is_fraud"]
    write_bronze(p, p.spec.valid_dataset("labels"), label_day, labels, LABELS_DDL)
    with pytest.raises(ReproductionError, match="the validation rows changed since training"):
        retrain_from_version(p, version)
