"""`loopline new-pipeline`: a first version of everything a new pipeline needs, from a sample file.

From a CSV or Parquet sample it infers the schemas (types, and which fields may be null),
then writes a commented spec, a feature-module stub, the nightly and retraining DAG files
and a starter contract per source (structure only: columns, types, required fields, a
unique key). The generated files pass `loopline spec check` and the DAG integrity tests as
they are; docs/authoring.md walks on from there (replay, ingest, drafted contracts, runs).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from loopline.contracts.draft import GX_SPARK_TYPES

if TYPE_CHECKING:
    import pandas as pd

MAX_CATEGORIES = 30
LABEL_TIME_FIELD = "labelled_at"  # when an outcome arrived: the labels schema's time field
TIME_FEATURES = {"hour": "hour_of_day", "day_of_week": "day_of_week", "month": "month"}  # column -> transform
DRIFT_FEATURES = 6
SPARK_TYPE = {"string": "string", "timestamp": "timestamp", "double": "double", "int": "int", "boolean": "boolean"}
DEFAULTS = {
    "binary": {"metric": "roc_auc", "margin": 0.002, "objective": "binary", "baseline": "sklearn_logistic",
               "tolerance": 0.03},
    "regression": {"metric": "rmse", "margin": 0.0, "objective": "regression", "baseline": "sklearn_ridge",
                   "tolerance": 0.0},
}


class OnboardingError(ValueError):
    """The sample and the options do not describe a pipeline."""


@dataclass(frozen=True)
class NewPipeline:
    name: str
    key: str
    time_field: str
    target: str
    task: str = "binary"
    entities: str = "entities"
    labels: str = "outcomes"
    label_columns: tuple[str, ...] = ()  # outcomes besides the target (never features)
    time_from: tuple[str, ...] = ()  # file columns the event time is built from (when time_field is not one)
    time_format: str | None = None
    key_from_time: str | None = None  # strftime of the event time (when key is not a file column)
    labels_after: str = "0s"
    label_time_field: str = LABEL_TIME_FIELD


def field_type(values: "pd.Series") -> str:
    """The spec field type of a sample column."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(values):
        return "boolean"
    if pd.api.types.is_integer_dtype(values):
        return "int"
    if pd.api.types.is_float_dtype(values):
        non_null = values.dropna()
        return "int" if len(non_null) and (non_null == non_null.round()).all() and values.notna().all() else "double"
    if pd.api.types.is_datetime64_any_dtype(values):
        return "timestamp"
    return "string"


def _plan(sample: "pd.DataFrame", new: NewPipeline) -> dict:
    """Schemas, features and replay settings inferred from the sample."""
    columns = set(sample.columns)
    if new.target not in columns:
        raise OnboardingError(f"--target {new.target!r} is not a column of the sample; columns: {sorted(columns)}")
    unknown = sorted((set(new.label_columns) | set(new.time_from)) - columns)
    if unknown:
        raise OnboardingError(f"{unknown} are not columns of the sample; columns: {sorted(columns)}")
    if new.key not in columns and not new.key_from_time:
        raise OnboardingError(f"--key {new.key!r} is not a column of the sample: give --key-from-time FORMAT to "
                              "build it from the event time, e.g. '%Y-%m-%dT%H' for one entity per hour")
    if new.time_field not in columns and not new.time_from:
        raise OnboardingError(f"--time-field {new.time_field!r} is not a column of the sample: give --time-from "
                              "COLUMNS (and --time-format) to build it, e.g. --time-from dteday,hr")
    outcome = {new.target, *new.label_columns}
    built_from = set(new.time_from) - {new.time_field}
    entity = {new.key: "string", new.time_field: "timestamp"}
    entity |= {c: field_type(sample[c]) for c in sample.columns if c not in outcome | built_from | set(entity)}
    nullable = sorted(c for c in entity if c in columns and sample[c].isna().any() and c not in (new.key, new.time_field))
    label = {new.key: "string", new.label_time_field: "timestamp",
             **{c: field_type(sample[c]) for c in [new.target, *new.label_columns]}}
    if new.task == "binary" and label[new.target] not in ("int", "boolean"):
        raise OnboardingError(f"a binary target must hold 0/1 or booleans; {new.target} looks like {label[new.target]}")
    candidates = [c for c in entity if c not in (new.key, new.time_field)]
    numeric = [c for c in candidates if entity[c] in ("int", "double")]
    boolean = [c for c in candidates if entity[c] == "boolean"]
    strings = [c for c in candidates if entity[c] == "string"]
    categorical = [c for c in strings if sample[c].nunique() <= MAX_CATEGORIES]
    return {"entity": entity, "nullable": nullable, "label": label, "numeric": numeric, "boolean": boolean,
            "categorical": categorical, "left_out": [c for c in strings if c not in categorical]}


def _yaml_list(items: list[str]) -> str:
    return "[" + ", ".join(items) + "]"


def _fields(fields: dict[str, str], indent: str) -> str:
    return "\n".join(f"{indent}{name}: {kind}" for name, kind in fields.items())


def spec_text(new: NewPipeline, plan: dict) -> str:
    """The commented spec file."""
    d = DEFAULTS[new.task]
    time_columns = list(new.time_from) or [new.time_field]
    event_time = f"{{columns: {_yaml_list(time_columns)}" + (f", format: \"{new.time_format}\"}}" if new.time_format
                                                             else "}")
    key = (f"{{event_time_format: \"{new.key_from_time}\"}}" if new.key_from_time else f"{{column: {new.key}}}")
    derived = list(TIME_FEATURES)
    drift = (plan["numeric"] + plan["categorical"])[:DRIFT_FEATURES]
    left_out = (f"\n  # left out (more than {MAX_CATEGORIES} values in the sample, add them if they are categories): "
                f"{', '.join(plan['left_out'])}") if plan["left_out"] else ""
    nullable = f"\n    nullable: {_yaml_list(plan['nullable'])}" if plan["nullable"] else ""
    categorical = "".join(f"\n    {c}: learn" for c in plan["categorical"]) or " {}"
    derived_lines = "\n".join(f"    {column}: {{{kind}: {new.time_field}}}" for column, kind in TIME_FEATURES.items())
    return f"""# yaml-language-server: $schema=../../docs/spec.schema.json
# Pipeline spec of {new.name}, written by `loopline new-pipeline` from a sample file: review every
# block (docs/authoring.md explains each), then check it with `loopline spec check {new.name}`.
name: {new.name}
description: TODO what {new.name} predicts, for whom
schedule: daily                  # daily | weekly | monthly | a cron expression (UTC)
start_date: 2024-01-01           # the first interval a backfill can reach
# end_date: 2024-12-31           # for a replayed history: the schedule makes no runs after it

task:
  type: {new.task}                 # binary (a probability) | regression (a value)
  entities: {new.entities}             # the source whose rows are scored
  labels: {new.labels}               # the source carrying the outcome (may be the same source)
  target: {new.target}

sources:
  {new.entities}:
    topic: {new.name}.{new.entities}
    schema: {new.entities}_v1
    time_field: {new.time_field}
  {new.labels}:
    topic: {new.name}.{new.labels}
    schema: {new.labels}_v1
    time_field: {new.label_time_field}
sinks:
  predictions_topic: {new.name}.predictions
  dead_letter_suffix: .dlq

schemas:
  {new.entities}_v1:
    key: {new.key}
    fields:
{_fields(plan["entity"], "      ")}{nullable}
  {new.labels}_v1:
    key: {new.key}
    fields:
{_fields(plan["label"], "      ")}

# How `loopline replay` turns the sample file's rows into records.
replay:
  event_time: {event_time}
  key: {key}
  labels_after: {new.labels_after}               # how long after its event an outcome arrives

# Where each dataset lives: a tier of include/storage.yaml. Mark personal data onprem_only.
storage:
  bronze_{new.entities}: {{tier: onprem}}
  bronze_{new.labels}: {{tier: onprem}}
  valid_{new.entities}: {{tier: onprem}}
  valid_{new.labels}: {{tier: onprem}}
  quarantine: {{tier: onprem}}
  checkpoints: {{tier: onprem}}
  reference: {{tier: cloud}}
  predictions: {{tier: cloud}}
  contract_reports: {{tier: cloud}}

# One contract per source (expectations/<suite>.json). The starter suites check structure
# only: replace them with reviewed drafts (`loopline contract draft`).
contracts:
  bronze_{new.entities}:
    suite: {new.name}_{new.entities}
    valid_dataset: valid_{new.entities}
    max_quarantined_share: 0.02
    freshness_hours: 2
  bronze_{new.labels}:
    suite: {new.name}_{new.labels}
    valid_dataset: valid_{new.labels}
    max_quarantined_share: 0.02

alerts:
  - {{channel: log}}

# Model inputs: entity fields and derived columns. For features no declaration covers, write
# a pure function in include/pipelines/{new.name}_features.py and name it here:
#   code: {{module: {new.name}_features, function: derive, reads: [...], adds: [...]}}
features:
  numeric: {_yaml_list(derived + plan["numeric"])}
  boolean: {_yaml_list(plan["boolean"])}
  categorical:{categorical}{left_out}
  derived:
{derived_lines}

training:
  model: lightgbm                # {new.task}: lightgbm, or {d["baseline"]} (the baseline)
  seed: 7
  min_labelled_rows: 500
  split: {{validation_days: 1, holdout_days: 1}}
  retrain_window_days: 14
  params:
    lightgbm:
      learning_rate: 0.05
      num_leaves: 31
      min_data_in_leaf: 20
      num_boost_round: 400
      early_stopping_rounds: 40
      verbose: -1

gate:
  primary_metric: {d["metric"]}
  min_improvement: {d["margin"]}           # in the metric's unit: raise it above its run-to-run noise
  critical_slices: {{}}            # entity field -> largest allowed loss per value
  slice_min_rows: 100

monitoring:
  drift_features: {_yaml_list(drift)}
  psi_threshold: 0.25
  feedback:
    min_labelled_rows: 500
    tolerance: {d["tolerance"]}               # roll back when the previous champion does this much better
  retrain_on:                    # feature drift is on; turn on what else should request retraining
    feature_drift: true
    # prediction_drift: 0.25     # the predictions' PSI against the holdout's
    # label_drift: 0.05          # the realised target mean off the training data's (target units)
    # calibration: 0.05          # the mean prediction off the realised target mean
    # decay: {{margin: {d["tolerance"]}}}     # realised {d["metric"]} worse than the holdout's by more than this
"""


def starter_suite(name: str, dataset: str, fields: dict[str, str], nullable: list[str], key: str) -> dict:
    """Structure only: exact columns (with ingest's lineage), types, required fields, unique key."""
    from loopline.ingest.landing import BATCH_KEY, LINEAGE_COLUMNS

    lineage = {c: t for c, t in zip(LINEAGE_COLUMNS, ("string", "int", "bigint"))} | {BATCH_KEY: "int"}
    rules = [{"type": "expect_table_columns_to_match_set", "kwargs": {"column_set": [*fields, *lineage],
                                                                      "exact_match": True},
              "meta": {"severity": "batch", "name": "schema"}}]
    rules += [{"type": "expect_column_values_to_be_of_type", "kwargs": {"column": c, "type_": GX_SPARK_TYPES[t]},
               "meta": {"severity": "batch"}} for c, t in fields.items()]
    rules += [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": c}, "meta": {"severity": "row"}}
              for c in fields if c not in nullable]
    rules.append({"type": "expect_column_values_to_be_unique", "kwargs": {"column": key}, "meta": {"severity": "row"}})
    return {"name": name, "meta": {"dataset": dataset, "notes": "STARTER by `loopline new-pipeline`: structure "
                                   "only. Replace it with a reviewed draft (`loopline contract draft`)."},
            "expectations": rules}


DAG_FILES = {
    "nightly": ('"""\n### {name} nightly loop\n\nWait for data, ingest, validate each source\'s contract, check '
                'the champion on returned labels, train and gate a candidate, score, monitor drift and request '
                'retraining, for every date of the run\'s interval. Spec: `include/pipelines/{name}.yaml`.\n"""\n'
                'from loopline_airflow.dag_factory import nightly_dag\n\ndag = nightly_dag("{name}", doc_md=__doc__)\n'),
    "retrain": ('"""\n### {name} retraining\n\nScheduled on the `{name}_retrain_request` asset (drift past the '
                'spec\'s threshold) or triggered by hand with the form: trains on recent days and registers the '
                'candidate through the same gate.\n"""\nfrom loopline_airflow.dag_factory import retrain_dag\n\n'
                'dag = retrain_dag("{name}", doc_md=__doc__)\n'),
}

FEATURE_STUB = '''"""{name}'s derived features, for what the spec's declarations cannot say: a pure function
of the entity rows (no I/O). Name it in the spec's `features.code` to use it; Loopline logs
this file with every model, so a registered version keeps the code it was trained with.
"""
from __future__ import annotations

import pandas as pd


def derive(rows: pd.DataFrame) -> pd.DataFrame:
    """The new columns (the spec's features.code.adds), computed from features.code.reads."""
    return pd.DataFrame(index=rows.index)
'''


def write(new: NewPipeline, sample_file: Path, pipelines: Path, dags: Path, expectations: Path) -> list[Path]:
    """Write the new pipeline's files; refuse to overwrite any."""
    from loopline.core.spec import spec_path
    from loopline.sources.replay import read_file

    path = spec_path(new.name, pipelines)  # checks the name
    plan = _plan(read_file(sample_file), new)
    files = {
        path: spec_text(new, plan),
        pipelines / f"{new.name}_features.py": FEATURE_STUB.format(name=new.name),
        **{dags / f"{new.name}_{kind}.py": text.format(name=new.name) for kind, text in DAG_FILES.items()},
        expectations / f"{new.name}_{new.entities}.json": json.dumps(starter_suite(
            f"{new.name}_{new.entities}", f"bronze_{new.entities}", plan["entity"], plan["nullable"], new.key),
            indent=2) + "\n",
        expectations / f"{new.name}_{new.labels}.json": json.dumps(starter_suite(
            f"{new.name}_{new.labels}", f"bronze_{new.labels}", plan["label"], [], new.key), indent=2) + "\n",
    }
    existing = sorted(str(f) for f in files if f.exists())
    if existing:
        raise OnboardingError(f"refusing to overwrite {existing}")
    for target, text in files.items():
        target.write_text(text)
    return list(files)
