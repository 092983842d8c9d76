"""The promotion gate on the real MLflow server: only a sound, better model becomes champion."""
from __future__ import annotations

from datetime import date

import mlflow.pyfunc
import pandas as pd
import pytest

from lifecycle_data import booster, gate, labelled, lightgbm_model
from loopline.core import db
from loopline.core.pipeline import Pipeline
from loopline.models.aliases import CHALLENGER, CHAMPION, alias_version

DAY = date(2026, 5, 20)


@pytest.fixture(scope="module")
def data():
    return labelled([date(2026, 5, d) for d in range(1, 8)]), labelled([DAY])


@pytest.fixture(scope="module")
def gated(make_pipeline, data):
    """A pipeline whose first, good model was promoted."""
    p = Pipeline.load(make_pipeline())
    history, holdout = data
    _, first = gate(p, holdout, lightgbm_model(p.spec, booster(p.spec, history)), DAY)
    assert first.promoted and first.decision == "no champion yet"
    return p, first.model_version


def test_a_worse_model_is_not_promoted_and_the_evidence_is_kept(gated, data):
    from mlflow import MlflowClient

    p, champion = gated
    history, holdout = data
    run_id, decision = gate(p, holdout, lightgbm_model(p.spec, booster(p.spec, history, shuffle_labels=True)), date(2026, 5, 21))
    client = MlflowClient()
    assert not decision.promoted and decision.decision.startswith("does not beat champion")
    assert alias_version(client, p.spec.model_name, CHAMPION) == champion
    assert alias_version(client, p.spec.model_name, CHALLENGER) == decision.model_version
    report = client.get_run(run_id).data.tags["loopline.gate_decision"]
    assert report == decision.decision
    with db.connect(p.settings.db_url) as conn:
        [row] = db.fetch_all(conn, "SELECT gate_report FROM loopline.training_runs WHERE pipeline=%s AND "
                                   "logical_date=%s", (p.spec.name, date(2026, 5, 21)))
    assert row["gate_report"]["smoke_test"]["passed"] and row["gate_report"]["champion_version"] == champion
    assert {s["column"] for s in row["gate_report"]["slices"]} == {"merchant_category", "country"}


def test_a_model_producing_nan_is_not_promoted(gated, data):
    import lightgbm as lgb
    from mlflow import MlflowClient

    p, champion = gated
    history, holdout = data
    lines = booster(p.spec, history).model_to_string().splitlines()
    broken = lgb.Booster(model_str="\n".join(  # every leaf NaN; tree_sizes goes, as the trees' sizes change
        "leaf_value=" + " ".join("nan" for _ in line.split("=", 1)[1].split()) if line.startswith("leaf_value=")
        else line for line in lines if not line.startswith("tree_sizes=")))
    _, decision = gate(p, holdout, lightgbm_model(p.spec, broken), date(2026, 5, 22))
    assert not decision.promoted and "predictions are NaN" in decision.decision
    assert alias_version(MlflowClient(), p.spec.model_name, CHAMPION) == champion
    assert alias_version(MlflowClient(), p.spec.model_name, CHALLENGER) != decision.model_version


class Constant(mlflow.pyfunc.PythonModel):  # a generic MLflow python model: not a type Loopline serves
    def predict(self, context, model_input: pd.DataFrame) -> list[float]:
        return [0.5] * len(model_input)


def test_a_model_that_does_not_load_is_not_promoted(gated, data):
    from mlflow import MlflowClient

    p, champion = gated
    _, holdout = data
    _, decision = gate(p, holdout, lambda: mlflow.pyfunc.log_model(name="model", python_model=Constant()).model_uri,
                       date(2026, 5, 23))
    assert not decision.promoted and "did not load and score in a fresh process" in decision.decision
    assert alias_version(MlflowClient(), p.spec.model_name, CHAMPION) == champion
