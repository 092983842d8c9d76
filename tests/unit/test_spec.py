"""Specs are validated when they load: every wrong spec is refused naming its path and why."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from loopline.core.spec import PIPELINES_DIR, SpecError, json_schema, load_spec

REPO = Path(__file__).resolve().parents[2]


def test_card_fraud_spec_lists_main_and_dead_letter_topics():
    spec = load_spec("card_fraud")
    assert spec.entity_source.topic == "card_payments" and spec.label_source.key == "transaction_id"
    assert "card_payments.dlq" in spec.topics and "card_payments.feedback.dlq" in spec.topics
    assert spec.predictions_topic in spec.topics
    assert spec.features.columns[:2] == ["amount", "hour"]


def _write(tmp_path: Path, mutate, name: str = "broken") -> Path:
    raw = yaml.safe_load((PIPELINES_DIR / "card_fraud.yaml").read_text())
    raw["name"] = name
    mutate(raw)
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(raw))
    return tmp_path


def _set(path: str, value):
    def mutate(raw):
        *parents, last = path.split(".")
        node = raw
        for part in parents:
            node = node[part]
        node[last] = value
    return mutate


def _drop(path: str):
    def mutate(raw):
        *parents, last = path.split(".")
        node = raw
        for part in parents:
            node = node[part]
        del node[last]
    return mutate


WRONG_SPECS = {
    "unknown top-level key": (_set("targett", "is_fraud"), r"targett: unknown key; allowed here: \[.*'task'"),
    "unknown key in a block": (_set("gate.min_improvment", 0.01), r"gate.min_improvment: unknown key; allowed here:"
                                                                   r" \['critical_slices', 'min_improvement'"),
    "drift feature not a feature": (_set("monitoring.drift_features", ["amount", "customer_id"]),
                                    r"monitoring.drift_features: \['customer_id'\] are not feature columns"),
    "target missing from the label schema": (_set("task.target", "chargeback"),
                                             r"task.target: 'chargeback' is not a field of the labels source's schema"),
    "metric of the wrong task type": (_set("gate.primary_metric", "rmse"),
                                      r"gate.primary_metric: 'rmse' is not a binary metric; use one of \['roc_auc'"),
    "slice column missing": (_set("gate.critical_slices", {"region": 0.05}),
                             r"gate.critical_slices: \['region'\] are not fields of the entities source"),
    "bad schedule": (_set("schedule", "every tuesday"), r"schedule: 'every tuesday' is not daily, weekly, monthly"),
    "unknown field type": (_set("schemas.transaction_v1.fields.amount", "money"),
                           r"schemas.transaction_v1.fields.amount: 'money' is not allowed"),
    "missing storage placement": (_drop("storage.predictions"), r"storage: placement missing for \['predictions'\]"),
    "source without a contract": (_drop("contracts.bronze_labels"), r"contracts: no contract for \['bronze_labels'\]"),
    "unknown source kind": (_set("sources.events.kind", "ftp"), r"sources.events.kind: 'ftp' is not allowed"),
    "kind without its settings": (_set("sources.events.kind", "postgres"),
                                  r"sources.events: a postgres source needs \['table', 'watermark'\]"),
    "missing model settings": (_drop("training.split"), r"training.split: Field required"),
    "model type of the wrong task": (_set("training.model", "sklearn_ridge"),
                                     r"training.model: 'sklearn_ridge' is not a model type for binary tasks"),
    "target of the wrong type": (_set("task.target", "label_source"),
                                 r"task.target: a binary target must be \['boolean', 'int'\], 'label_source' is string"),
    "role naming no source": (_set("task.entities", "payments"),
                              r"task.entities: 'payments' is not one of the sources \['events', 'labels'\]"),
    "feature reading no field": (_set("features.numeric", ["amount", "hour", "velocity"]),
                                 r"features: \['velocity'\] are neither fields of schema transaction_v1"),
    "nullable key": (_set("schemas.transaction_v1.nullable", ["transaction_id"]),
                     r"schemas.transaction_v1: the key 'transaction_id' cannot be nullable"),
    "nullable time field": (_set("schemas.label_v1.nullable", ["label_time"]),
                            r"sources.labels.time_field: 'label_time' is nullable"),
    "webhook without its variable": (_set("alerts", [{"channel": "webhook"}]),
                                     r"alerts.0: a webhook channel needs url_env"),
    "negative threshold": (_set("monitoring.psi_threshold", -1), r"monitoring.psi_threshold: Input should be greater"),
    "time limit of no task": (_set("timeouts.tasks", {"trian": 60}),
                              r"timeouts.tasks: .*\['trian'\] are not tasks; allowed: \['ingest'"),
    "reject share above one": (_set("ingest.max_rejected_share", 1.5),
                               r"ingest.max_rejected_share: Input should be less than or equal to 1"),
    "unknown-field policy": (_set("schemas.transaction_v1.unknown_fields", "drop"),
                             r"schemas.transaction_v1.unknown_fields: 'drop' is not allowed"),
    "late-event policy": (_set("ingest.late_events", "ignore"), r"ingest.late_events: 'ignore' is not allowed"),
    "retention of no dataset": (_set("retention.datasets", {"bronze_event": 30}),
                                r"retention.datasets: \['bronze_event'\] are not datasets of this pipeline"),
    "retention of no kind of topic": (_set("retention.topics", {"raw": {"days": 3}}),
                                      r"retention.topics.raw.\[key\]: 'raw' is not allowed; input should be 'sources'"),
    "older schema of the same version": (_set("sources.events.older_schemas", ["label_v1"]),
                                         r"sources.events.older_schemas: the schemas' versions repeat a value"),
    "older schema unknown": (_set("sources.events.older_schemas", ["transaction_v0"]),
                             r"sources.events: schemas \['transaction_v0'\] are not among the schemas"),
    "duplicate policy": (_set("contracts.bronze_events.exact_duplicates", {"keep": "last"}),
                         r"contracts.bronze_events.exact_duplicates.keep: 'last' is not allowed"),
}


@pytest.mark.parametrize("case", sorted(WRONG_SPECS))
def test_a_wrong_spec_is_refused_at_load_with_its_path_and_reason(tmp_path, case):
    mutate, expected = WRONG_SPECS[case]
    with pytest.raises(SpecError, match=expected) as refused:
        load_spec("broken", _write(tmp_path, mutate))
    assert str(refused.value).startswith("broken.yaml: ")


def test_every_problem_is_listed_at_once(tmp_path):
    directory = _write(tmp_path, lambda raw: (_drop("training.split")(raw), _set("gate.primary_metric", "rmse")(raw),
                                              _set("schedule", "sometimes")(raw)))
    with pytest.raises(SpecError, match=r"broken.yaml: 2 problem\(s\)"):  # field errors first; cross-checks after
        load_spec("broken", directory)


@pytest.mark.parametrize("name", ["../card_fraud", "Card", "a b", "x" * 70, ""])
def test_pipeline_names_cannot_leave_the_pipelines_folder(name):
    with pytest.raises(SpecError, match="is not a pipeline name"):
        load_spec(name)


def test_the_file_name_and_the_spec_name_agree(tmp_path):
    directory = _write(tmp_path, lambda raw: None, name="other")
    (directory / "renamed.yaml").write_text((directory / "other.yaml").read_text())
    with pytest.raises(SpecError, match="name: 'other' must equal the file name 'renamed'"):
        load_spec("renamed", directory)


def test_unknown_pipeline_lists_known_ones():
    with pytest.raises(SpecError, match="card_fraud"):
        load_spec("no_such_pipeline")


def test_spec_placing_onprem_only_data_in_the_cloud_is_a_policy_error(tmp_path):
    from loopline.core.storage import Lake, PlacementError, Tier

    directory = _write(tmp_path, lambda raw: raw["storage"].update(bronze_events={"tier": "cloud", "onprem_only": True}))
    spec = load_spec("broken", directory)
    tiers = {"onprem": Tier("onprem", "file:///l", "onprem"), "cloud": Tier("cloud", "s3://b/l", "cloud")}
    with pytest.raises(PlacementError, match="bronze_events"):
        Lake(spec.name, spec.placements, tiers)


def test_a_bronze_dataset_names_the_source_that_lands_it():
    spec = load_spec("card_fraud")
    assert spec.source_of(spec.entity_source.dataset) is spec.entity_source
    assert spec.source_of(spec.label_source.dataset) is spec.label_source
    assert spec.source_of(spec.entity_dataset) is None  # the contract's output: no source lands it


def test_downstream_stages_read_the_contract_output():
    spec = load_spec("card_fraud")
    assert (spec.entity_dataset, spec.label_dataset) == ("valid_events", "valid_labels")


def test_the_committed_json_schema_is_current():
    committed = json.loads((REPO / "docs" / "spec.schema.json").read_text())
    assert committed == json_schema(), "docs/spec.schema.json is stale: `loopline spec schema > docs/spec.schema.json`"


def test_spec_check_validates_spec_feature_code_and_suites_without_services(tmp_path):
    env_free = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO / "include")}
    ok = subprocess.run([sys.executable, "-m", "loopline.ops.cli", "spec", "check", "card_fraud"], capture_output=True,
                        text=True, env=env_free, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "card_fraud: spec, feature code and contract suites are valid" in ok.stdout
    directory = _write(tmp_path, _set("contracts.bronze_events.suite", "card_labels_bronze"))
    refused = subprocess.run([sys.executable, "-m", "loopline.ops.cli", "spec", "check", "broken"], capture_output=True,
                             text=True, env={**env_free, "LOOPLINE_PIPELINES_DIR": str(directory)}, timeout=120)
    assert refused.returncode == 2
    assert "contracts.bronze_events.suite: card_labels_bronze has rules on ['is_fraud', 'label_source']" in \
        refused.stderr
    directory = _write(tmp_path, _set("contracts.bronze_events.exact_duplicates", {"first_by": ["arrival"]}))
    refused = subprocess.run([sys.executable, "-m", "loopline.ops.cli", "spec", "check", "broken"], capture_output=True,
                             text=True, env={**env_free, "LOOPLINE_PIPELINES_DIR": str(directory)}, timeout=120)
    assert "contracts.bronze_events.exact_duplicates.first_by: ['arrival'] are not columns of bronze_events" in \
        refused.stderr


@pytest.mark.parametrize("field, value", [("table", 'payments"; DROP TABLE x; --'), ("table", "a.b.c"),
                                          ("watermark", "updated_at desc"), ("watermark", "x;y")])
def test_a_postgres_source_names_only_plain_identifiers(tmp_path, field, value):
    def mutate(raw):
        source = next(iter(raw["sources"].values()))
        source.update({"kind": "postgres", "table": "public.payments", "watermark": "updated_at", field: value})

    with pytest.raises(SpecError, match=field):
        load_spec("broken", _write(tmp_path, mutate))
