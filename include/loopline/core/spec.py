"""Pipeline specs: one YAML file per model pipeline, validated into typed models when it loads.

The spec is the whole contract between a pipeline's author and Loopline: its sources (by
role: which one carries the entities to score, which one the labels), schemas (with the
fields that may be null), task type and metrics, features, thresholds, schedule and
storage placement. Code takes a spec instead of hard-coding any of them. A spec that
contradicts itself is refused here, naming the file, the path inside it and what is
allowed, instead of failing in the middle of a task (`loopline spec check <name>`).
"""
from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from loopline.core import metrics
from loopline.core.config import REPOSITORY
from loopline.core.storage import Placement as StoragePlacement

PIPELINES_DIR = REPOSITORY / "include" / "pipelines"
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"  # pipeline names end up in paths, SQL, topics and model names
FieldType = Literal["string", "timestamp", "double", "int", "boolean"]
# Source tables and columns reach SQL as quoted identifiers (psycopg2.sql); the patterns
# refuse at load time what no sane table name needs (quotes, spaces, semicolons).
COLUMN_PATTERN = r"^([A-Za-z_][A-Za-z0-9_]{0,62})?$"
TABLE_PATTERN = r"^([A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?)?$"
Fraction = Annotated[float, Field(ge=0, le=1)]


def pipelines_dir() -> Path:
    """Where specs live: include/pipelines, or LOOPLINE_PIPELINES_DIR (deployments, tests)."""
    return Path(os.environ.get("LOOPLINE_PIPELINES_DIR", PIPELINES_DIR))


class SpecError(ValueError):
    """A pipeline spec is missing something or contradicts itself."""


class Strict(BaseModel):
    """Every block of a spec: unknown keys are refused (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid")


class SchemaVersion(Strict):
    field: str = Field(description="the int field producers set to their schema's version")
    value: int = Field(description="the version this schema describes; records of another are quarantined")


class Schema(Strict):
    """The fields of one kind of record. Fields are required (non-null) unless listed in `nullable`."""

    key: str
    fields: dict[str, FieldType]
    nullable: list[str] = []
    version: SchemaVersion | None = None
    unknown_fields: Literal["report", "quarantine"] = Field(
        "report", description="a field the schema does not declare: report (land the record without it, and count "
        "each such field in the ingest record and task log) or quarantine (`unknown_field:<names>`)")
    _name: str = PrivateAttr("")

    @property
    def name(self) -> str:
        return self._name

    @model_validator(mode="after")
    def _key_and_nullable_are_fields(self) -> "Schema":
        if self.key not in self.fields:
            raise ValueError(f"key {self.key!r} is not one of its fields {sorted(self.fields)}")
        unknown = sorted(set(self.nullable) - set(self.fields))
        if unknown:
            raise ValueError(f"nullable lists {unknown}, which are not fields")
        if self.key in self.nullable:
            raise ValueError(f"the key {self.key!r} cannot be nullable")
        if self.version and self.fields.get(self.version.field) != "int":
            raise ValueError(f"version.field {self.version.field!r} must be an int field of the schema")
        return self

    def required(self, field: str) -> bool:
        return field not in self.nullable


def check_versions(versions: list[Schema]) -> None:
    """Schemas side by side in one source: each names its version in the same int field, with
    values of their own; they share the key, and a field has one type in all of them."""
    fields = {v.version.field if v.version else None for v in versions}
    if None in fields or len(fields) != 1:
        raise ValueError("every schema of the source must declare a version in the same field, to tell records "
                         f"apart: {[f'{v.name}: {v.version}' for v in versions]}")
    values = [v.version.value for v in versions]
    if len(set(values)) != len(values):
        raise ValueError(f"the schemas' versions repeat a value: {values}")
    if len({v.key for v in versions}) != 1:
        raise ValueError(f"the schemas have different keys: {sorted({v.key for v in versions})}")
    for name in {f for v in versions for f in v.fields}:
        types = {v.fields[name] for v in versions if name in v.fields}
        if len(types) > 1:
            raise ValueError(f"field {name!r} has types {sorted(types)} in different versions; a bronze column has "
                             "one type (give the new type a new field name)")


def merged_schema(versions: list[Schema]) -> Schema:
    """One schema with the fields of every version (the newest's order first); a field some
    version lacks or allows null is nullable."""
    fields = {name: kind for version in versions for name, kind in version.fields.items()}
    fields = {**versions[0].fields, **fields}
    required = [f for f in fields if all(f in v.fields and v.required(f) for v in versions)]
    merged = Schema(key=versions[0].key, fields=fields, nullable=[f for f in fields if f not in required],
                    unknown_fields=versions[0].unknown_fields)
    merged._name = "+".join(v.name for v in versions)
    return merged


class Source(Strict):
    """Where one bronze dataset comes from: a Kafka topic, a PostgreSQL table read by a
    watermark column, or JSON-lines files landing under a prefix of a storage tier."""

    schema_: str = Field(alias="schema", description="name of a schema under `schemas`")
    time_field: str = Field(description="partitions bronze by the date of this field (event time)")
    kind: Literal["kafka", "postgres", "files"] = "kafka"
    topic: str = ""  # kafka
    table: str = Field("", pattern=TABLE_PATTERN, description="postgres: [schema.]table")
    watermark: str = Field("", pattern=COLUMN_PATTERN,
                           description="postgres: monotonically increasing column (e.g. updated_at)")
    connection_env: str = "LOOPLINE_DB_URL"  # postgres: environment variable holding the database URL
    landing_tier: str = ""  # files: tier holding the landing prefix
    landing_prefix: str = ""  # files: prefix (relative to the tier root) new files land under
    older_schemas: list[str] = Field(
        [], description="schemas of earlier versions still accepted, side by side with `schema` (each declares its "
        "`version`); bronze holds the fields of every version, null where a version has none")
    _name: str = PrivateAttr("")
    _schema: Schema | None = PrivateAttr(None)
    _versions: list[Schema] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _kind_settings(self) -> "Source":
        required = {"kafka": ["topic"], "postgres": ["table", "watermark"], "files": ["landing_tier", "landing_prefix"]}
        missing = [name for name in required[self.kind] if not getattr(self, name)]
        if missing:
            raise ValueError(f"a {self.kind} source needs {missing}")
        return self

    @property
    def name(self) -> str:
        return self._name

    @property
    def dataset(self) -> str:
        return f"bronze_{self._name}"

    @property
    def schema(self) -> Schema:  # noqa: D401 (the resolved schema, not pydantic's deprecated classmethod)
        """The shape of the bronze dataset: `schema`, or with older versions, the fields of all."""
        assert self._schema is not None, "a Source is resolved by the PipelineSpec that holds it"
        return self._schema

    @property
    def versions(self) -> list[Schema]:
        """The schemas a record may follow: `schema`, then `older_schemas`."""
        return self._versions

    def resolve(self, name: str, schemas: dict[str, "Schema"]) -> None:
        """Bind the source to its schemas (called by the PipelineSpec that holds it)."""
        self._name = name
        self._versions = [schemas[n] for n in (self.schema_, *self.older_schemas)]
        self._schema = merged_schema(self._versions) if self.older_schemas else self._versions[0]

    @property
    def key(self) -> str:
        return self.schema.key


TIME_PARTS = ("hour_of_day", "day_of_week", "month")  # transforms of one timestamp column
REQUIRED_DATASETS = ("quarantine", "predictions", "reference", "checkpoints", "contract_reports")  # besides the sources'
DRIFT_REPORTS = "drift_reports"
DEFAULTED_DATASETS = {DRIFT_REPORTS: "contract_reports"}  # placed like the other, unless the spec places them


class Transform(Strict):
    """One built-in transform (exactly one key): no strings are evaluated."""

    hour_of_day: str | None = Field(None, description="timestamp column -> hour 0-23")
    day_of_week: str | None = Field(None, description="timestamp column -> 0 (Monday) .. 6")
    month: str | None = Field(None, description="timestamp column -> 1 .. 12")
    ratio: tuple[str, str] | None = Field(None, description="[numerator, denominator]; NaN where it is 0")
    equals: tuple[str, str | int | float | bool] | None = Field(None, description="[column, value] -> 1.0 / 0.0")

    @model_validator(mode="after")
    def _exactly_one(self) -> "Transform":
        if len(self._given()) != 1:
            raise ValueError(f"give exactly one transform of {sorted(type(self).model_fields)}")
        return self

    def _given(self) -> list[str]:
        return [name for name in type(self).model_fields if getattr(self, name) is not None]

    @property
    def kind(self) -> str:
        (kind,) = self._given()
        return kind

    @property
    def inputs(self) -> list[str]:
        argument = getattr(self, self.kind)
        return [argument] if self.kind in TIME_PARTS else \
            [argument[0], argument[1]] if self.kind == "ratio" else [argument[0]]


class FeatureCode(Strict):
    """A feature module beside the spec: `function(rows) -> DataFrame` of the `adds` columns."""

    module: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="include/pipelines/<module>.py")
    function: str = Field("derive", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    reads: list[str] = Field(description="entity fields the function reads (all a model's stored rows keep)")
    adds: list[str] = Field(description="the columns it returns")


class Features(Strict):
    numeric: list[str] = []
    boolean: list[str] = []
    categorical: dict[str, list[str] | Literal["learn"]] = Field(
        {}, description="column -> its vocabulary, or 'learn' (from the training rows, stored with the model)")
    derived: dict[str, Transform] = Field({}, description="new column -> one built-in transform")
    code: FeatureCode | None = None

    @property
    def columns(self) -> list[str]:
        """The model's input columns, in order."""
        return [*self.numeric, *self.boolean, *self.categorical]

    @property
    def made(self) -> list[str]:
        """Columns derived or added by code (not read from the entity rows)."""
        return [*self.derived, *(self.code.adds if self.code else [])]

    def source_columns(self) -> list[str]:
        """The entity fields the features are built from: what a model's stored rows keep
        (and all they keep, so e.g. customer ids never leave the on-prem tier this way)."""
        read = [c for c in self.columns if c not in self.made]
        read += [i for t in self.derived.values() for i in t.inputs if i not in self.made]
        read += self.code.reads if self.code else []
        return list(dict.fromkeys(read))

    def check_against(self, schema: Schema, path: str) -> None:
        """Refuse features that read fields the entity schema lacks, or make unused columns."""
        duplicated = sorted({c for c in self.columns if self.columns.count(c) > 1})
        if duplicated:
            raise ValueError(f"{path}: {duplicated} listed twice among numeric/boolean/categorical")
        clash = sorted(set(self.made) & set(schema.fields))
        if clash:
            raise ValueError(f"{path}: derived/code columns {clash} would replace fields of the same name")
        unknown = sorted(set(self.source_columns()) - set(schema.fields))
        if unknown:
            raise ValueError(f"{path}: {unknown} are neither fields of schema {schema.name} "
                             f"{sorted(schema.fields)} nor derived or code columns")
        unused = sorted(set(self.made) - set(self.columns) - {i for t in self.derived.values() for i in t.inputs})
        if unused:
            raise ValueError(f"{path}: {unused} are made but not model inputs: list them under numeric, boolean "
                             "or categorical (or remove them)")
        if not self.columns:
            raise ValueError(f"{path}: no model inputs (numeric, boolean, categorical)")

    @property
    def learns(self) -> bool:
        return any(v == "learn" for v in self.categorical.values())


class Sinks(Strict):
    predictions_topic: str
    dead_letter_suffix: str = ".dlq"


class IngestLimits(Strict):
    max_record_bytes: int = Field(65536, gt=0, description="larger payloads are quarantined as `oversize`")
    max_records_per_batch: int = Field(1_000_000, gt=0, description="upper bound of one Kafka micro-batch")
    min_new_records: int = Field(1, ge=0, description="the ingest sensor waits for at least this many unread records")
    wait_timeout_minutes: int = Field(360, gt=0, description="... for at most this long, then fails naming the lag")
    max_rejected_share: Fraction = Field(0.1, description="a run that quarantines a larger share of what it read "
                                                          "stops the line with an alert")
    stall_minutes: float = Field(30, gt=0, description="a streaming query that completes no micro-batch for this "
                                                        "long is stopped, and the task fails naming it")
    late_events: Literal["rerun", "manual"] = Field(
        "rerun", description="events landed after their date was validated: rerun (the run that lands them "
        "triggers a rerun of that date's interval: validate and score, no training) or manual (the run says which "
        "dates to rerun by hand)")


class Engine(Strict):
    """Which engine a stage runs on, chosen by the size of its batch."""

    in_process_below_rows: int = Field(
        100_000, ge=0, description="a contract or scoring batch with fewer rows runs in the task's own process "
        "(GX on pandas, the model on pyarrow batches) instead of on Spark, with the same verdicts, routed rows and "
        "predictions: small nightly batches skip Spark's fixed costs. 0: always Spark")


# The tasks of a pipeline's DAGs that `timeouts.tasks` may name (`validate` covers every contract).
TIMED_TASKS = ("ingest", "validate", "check_feedback", "train", "register", "score", "monitor", "request_retraining",
               "late_reruns", "rerun_late_intervals", "close_retrain_request")


class Timeouts(Strict):
    """How long one attempt of a task may run before Airflow stops it (its retries follow)."""

    default_minutes: float = Field(120, gt=0)
    tasks: dict[str, Annotated[float, Field(gt=0)]] = Field(
        {}, description=f"minutes per task, overriding the default: {', '.join(TIMED_TASKS)}")

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, tasks: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(tasks) - set(TIMED_TASKS))
        if unknown:
            raise ValueError(f"{unknown} are not tasks; allowed: {list(TIMED_TASKS)}")
        return tasks

    def minutes(self, task: str) -> float:
        return self.tasks.get(task, self.default_minutes)


class Placement(Strict):
    tier: str
    onprem_only: bool = False


class ExactDuplicates(Strict):
    """Rows equal in every field of the source's schema (a producer's retry, a file sent twice).
    They differ only in lineage, so the tie-break orders them by lineage columns (or fields)."""

    keep: Literal["first", "none"] = Field(
        "first", description="first: the first copy goes on to the suite and the later ones are quarantined as "
        "`row:exact_duplicate`; none: every copy goes on to the suite (a uniqueness rule then quarantines all)")
    first_by: list[str] = Field(["ingest_batch", "source_partition", "source_offset"], min_length=1,
                                description="the columns that order the copies; the smallest is the first")


class Contract(Strict):
    """The data contract of one bronze dataset: its GX suite (expectations/<suite>.json) and
    where the rows that pass its row-level rules go. Downstream stages read only `valid_dataset`."""

    suite: str
    valid_dataset: str
    max_quarantined_share: Fraction = 0.02  # more rows than this failing row-level rules stops the line
    freshness_hours: float = 2.0  # the `freshness_cutoff` suite parameter: end of the date minus this
    exact_duplicates: ExactDuplicates = ExactDuplicates()
    _dataset: str = PrivateAttr("")

    @property
    def dataset(self) -> str:
        return self._dataset


class AlertChannel(Strict):
    """Where a stopped line is reported. Addresses come from environment variables (never the
    spec); a channel whose variable is unset is inactive, and says so in the task log."""

    channel: Literal["log", "webhook", "email"]
    url_env: str = ""  # webhook: variable holding the URL to POST the alert to
    to_env: str = ""  # email: variable holding comma-separated recipients (SMTP: LOOPLINE_SMTP_*)

    @model_validator(mode="after")
    def _address_variable(self) -> "AlertChannel":
        needed = {"webhook": "url_env", "email": "to_env"}.get(self.channel)
        if needed and not getattr(self, needed):
            raise ValueError(f"a {self.channel} channel needs {needed} (the environment variable to read)")
        return self


class Task(Strict):
    """What is predicted, for which entities, from which outcome.

    `entities` is the source whose rows are scored (its schema's key identifies an entity and
    its time field is the event time); `labels` is the source carrying the outcome, joined on
    its schema's key (it may be the same source, when the outcome arrives later on the same
    stream). The latest label per key wins; a null target is not a label (such rows are left
    out of training and counted)."""

    type: Literal["binary", "regression"]
    entities: str
    labels: str
    target: str


class Split(Strict):
    validation_days: int = Field(ge=1)
    holdout_days: int = Field(ge=1)


class Training(Strict):
    model: str = Field(description="a model type of loopline.models.types (by task type)")
    seed: int = 7
    min_labelled_rows: int = Field(gt=0)
    split: Split
    retrain_window_days: int = Field(gt=0, description="a drift-triggered retrain learns from recent days only")
    params: dict[str, dict[str, Any]] = Field({}, description="per model type; only the chosen type's are used")

    @property
    def model_params(self) -> dict[str, Any]:
        return dict(self.params.get(self.model, {}))


class SmokeTest(Strict):
    sample_rows: int = Field(1000, gt=0)
    max_ms_per_1000_rows: float = Field(1000.0, gt=0)


class Gate(Strict):
    primary_metric: str = Field(description="one of the task type's metrics; its direction decides 'better'")
    min_improvement: float = Field(ge=0, description="the challenger must beat the champion by this much")
    critical_slices: dict[str, float] = Field({}, description="entity field -> largest allowed loss per value")
    slice_min_rows: int = Field(500, gt=0)
    smoke_test: SmokeTest = SmokeTest()


class Feedback(Strict):
    min_labelled_rows: int = Field(gt=0)
    tolerance: float = Field(ge=0)


class Decay(Strict):
    """The champion's realised primary metric on the label window, against its holdout score."""

    margin: float | None = Field(None, ge=0, description="worse than the holdout score by more than this")
    floor: float | None = Field(None, description="or worse than this value")


class RetrainOn(Strict):
    """The triggers that request retraining (loopline.monitoring.retraining); unset: off.

    The label-based ones (label_drift, calibration, decay) wait for `feedback.min_labelled_rows`
    labelled predictions in the label window."""

    feature_drift: bool = Field(True, description="a drift feature's PSI above monitoring.psi_threshold")
    prediction_drift: float | None = Field(None, gt=0, description="the predictions' PSI against the holdout "
                                           "predictions above this")
    label_drift: float | None = Field(None, gt=0, description="the realised target mean (a binary target's "
                                      "positive rate) off the training data's by more than this")
    calibration: float | None = Field(None, gt=0, description="the mean prediction off the realised target mean "
                                      "by more than this")
    decay: Decay | None = None
    cooldown_days: int = Field(7, ge=0, description="a reason whose retrain the gate rejected within this many "
                               "days is throttled")
    running_hours: float = Field(24, gt=0, description="a retrain requested this recently that has not finished "
                                 "throttles its reasons")


class Monitoring(Strict):
    drift_features: list[str]
    psi_threshold: float = Field(gt=0)
    feedback: Feedback
    label_window_days: int = Field(7, ge=1, description="label drift and calibration count the labels returned for "
                                   "predictions scored in this many days up to the monitored date")
    retrain_on: RetrainOn = RetrainOn()


class ModelCard(Strict):
    intended_use: str = ""
    limitations: str = ""


class ReplayTime(Strict):
    columns: list[str] = Field(min_length=1, description="file columns joined with a space, e.g. [dteday, hr]")
    format: str | None = Field(None, description="strptime format of the joined text, e.g. '%Y-%m-%d %I%p' "
                                                 "(UTC); none: ISO 8601")


class ReplayKey(Strict):
    column: str | None = Field(None, description="a file column holding the entity key")
    event_time_format: str | None = Field(None, description="or: the event time formatted (strftime), e.g. "
                                                            "'%Y-%m-%dT%H' for one entity per hour")

    @model_validator(mode="after")
    def _exactly_one(self) -> "ReplayKey":
        if (self.column is None) == (self.event_time_format is None):
            raise ValueError("give exactly one of column, event_time_format")
        return self


class Replay(Strict):
    """How `loopline replay` turns a historical file's rows into this pipeline's records."""

    event_time: ReplayTime
    key: ReplayKey
    labels_after: str = Field("0s", pattern=r"^\d+\s*(s|m|h|d)$",
                              description="how long after its event a row's outcome arrives (30s, 90m, 2h, 3d)")


class TopicRetention(Strict):
    """How long a kind of topic keeps its records on the broker (Kafka's retention.ms and
    retention.bytes, per partition); unset: the broker's default."""

    days: float | None = Field(None, gt=0)
    bytes: int | None = Field(None, gt=0, description="per partition")

    def configs(self) -> dict[str, str]:
        return {**({"retention.ms": str(int(self.days * 86_400_000))} if self.days else {}),
                **({"retention.bytes": str(self.bytes)} if self.bytes else {})}


class Retention(Strict):
    """What `loopline gc` deletes: lake partitions older than their dataset's days (never one a
    registered model's lineage names), and the topics' retention it sets on the broker."""

    datasets: dict[str, Annotated[int, Field(gt=0)]] = Field(
        {}, description="dataset -> days its date partitions are kept (quarantine and contract_reports included); "
        "a dataset not listed is kept for ever")
    topics: dict[Literal["sources", "dead_letters", "predictions"], TopicRetention] = {}


SCHEDULES = {"daily": "0 0 * * *", "weekly": "0 0 * * 1", "monthly": "0 0 1 * *"}


class PipelineSpec(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    schedule: str = Field("daily", description="daily, weekly, monthly, or a five-field cron expression (UTC)")
    start_date: date = Field(date(2024, 1, 1), description="the first data interval a backfill can reach")
    end_date: date | None = Field(None, description="the last date the schedule covers (a replayed history); "
                                                    "none: the schedule runs on")
    deadline_hours: float | None = Field(None, gt=0, description="a scheduled nightly run must have succeeded this "
                                         "many hours after its logical date (the end of its interval); missing it "
                                         "alerts the spec's channels (backfills and runs by hand are not held to it). "
                                         "None: no deadline")
    sources: dict[str, Source]
    sinks: Sinks
    schemas: dict[str, Schema]
    task: Task
    ingest: IngestLimits = IngestLimits()
    timeouts: Timeouts = Timeouts()
    engine: Engine = Engine()
    storage: dict[str, Placement]
    contracts: dict[str, Contract]
    alerts: list[AlertChannel] = [AlertChannel(channel="log")]
    model_card: ModelCard = ModelCard()
    replay: Replay | None = None
    retention: Retention = Retention()
    features: Features
    training: Training
    gate: Gate
    monitoring: Monitoring

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        from croniter import croniter

        if value not in SCHEDULES and not (len(value.split()) == 5 and croniter.is_valid(value)):
            raise ValueError(f"{value!r} is not {', '.join(SCHEDULES)} or a five-field cron expression")
        return value

    @field_validator("sources")
    @classmethod
    def _source_names(cls, sources: dict[str, Source]) -> dict[str, Source]:
        bad = [name for name in sources if not re.fullmatch(NAME_PATTERN, name)]
        if bad:
            raise ValueError(f"source names {bad} must match {NAME_PATTERN} (they name datasets and paths)")
        return sources

    @model_validator(mode="after")
    def _resolve_and_check(self) -> "PipelineSpec":
        if self.end_date and self.end_date < self.start_date:
            raise ValueError(f"end_date: {self.end_date} is before start_date {self.start_date}")
        for name, schema in self.schemas.items():
            schema._name = name
        for name, source in self.sources.items():
            unknown = [n for n in (source.schema_, *source.older_schemas) if n not in self.schemas]
            if unknown:
                raise ValueError(f"sources.{name}: schemas {unknown} are not among the schemas {sorted(self.schemas)}")
            source.resolve(name, self.schemas)
            if source.older_schemas:
                try:
                    check_versions(source.versions)
                except ValueError as error:
                    raise ValueError(f"sources.{name}.older_schemas: {error}") from error
            if source.time_field not in source.schema.fields:
                raise ValueError(f"sources.{name}.time_field: {source.time_field!r} is not a field of schema "
                                 f"{source.schema_} {sorted(source.schema.fields)}")
            if not source.schema.required(source.time_field):
                raise ValueError(f"sources.{name}.time_field: {source.time_field!r} is nullable in schema "
                                 f"{source.schema_}; bronze is partitioned by it, so it must be required")
        for dataset, contract in self.contracts.items():
            contract._dataset = dataset
        self._check_datasets()
        self._check_task()
        self.features.check_against(self.entity_source.schema, "features")
        self._check_model_settings()
        return self

    def _check_datasets(self) -> None:
        bronze = {s.dataset for s in self.sources.values()}
        unknown = sorted(set(self.contracts) - bronze)
        if unknown:
            raise ValueError(f"contracts: {unknown} are not bronze datasets of a source ({sorted(bronze)})")
        uncontracted = sorted(bronze - set(self.contracts))
        if uncontracted:
            raise ValueError(f"contracts: no contract for {uncontracted}; downstream stages read only data that "
                             "passed a contract, so every source needs one (see `loopline contract draft`)")
        for dataset, like in DEFAULTED_DATASETS.items():
            if like in self.storage:
                self.storage.setdefault(dataset, self.storage[like])
        datasets = (bronze | {c.valid_dataset for c in self.contracts.values()}
                    | set(REQUIRED_DATASETS))
        missing = sorted(datasets - set(self.storage))
        if missing:
            raise ValueError(f"storage: placement missing for {missing}")
        unplaced = sorted(set(self.retention.datasets) - set(self.storage))
        if unplaced:
            raise ValueError(f"retention.datasets: {unplaced} are not datasets of this pipeline ({sorted(self.storage)})")

    def _check_task(self) -> None:
        for role in ("entities", "labels"):
            source = getattr(self.task, role)
            if source not in self.sources:
                raise ValueError(f"task.{role}: {source!r} is not one of the sources {sorted(self.sources)}")
        label_schema = self.label_source.schema
        if self.task.target not in label_schema.fields:
            raise ValueError(f"task.target: {self.task.target!r} is not a field of the labels source's schema "
                             f"{label_schema.name} {sorted(label_schema.fields)}")
        allowed = {"binary": {"int", "boolean"}, "regression": {"int", "double"}}[self.task.type]
        if label_schema.fields[self.task.target] not in allowed:
            raise ValueError(f"task.target: a {self.task.type} target must be {sorted(allowed)}, "
                             f"{self.task.target!r} is {label_schema.fields[self.task.target]}")
        entity_key, label_key = self.entity_source.schema, label_schema
        if entity_key.fields[entity_key.key] != label_key.fields[label_key.key]:
            raise ValueError(f"task: the entity key {entity_key.key} and the label key {label_key.key} have different "
                             "types, so labels cannot be joined to entities")

    def _check_model_settings(self) -> None:
        task = self.task.type
        known = {name for name, tasks in metrics.MODEL_TYPES.items() if task in tasks}
        if self.training.model not in known:
            raise ValueError(f"training.model: {self.training.model!r} is not a model type for {task} tasks; "
                             f"use one of {sorted(known)}")
        allowed = metrics.names(task)
        if self.gate.primary_metric not in allowed:
            raise ValueError(f"gate.primary_metric: {self.gate.primary_metric!r} is not a {task} metric; "
                             f"use one of {allowed}")
        columns = self.features.columns
        not_features = [f for f in self.monitoring.drift_features if f not in columns]
        if not_features:
            raise ValueError(f"monitoring.drift_features: {not_features} are not feature columns {columns}")
        entity_fields = self.entity_source.schema.fields
        missing = [c for c in self.gate.critical_slices if c not in entity_fields]
        if missing:
            raise ValueError(f"gate.critical_slices: {missing} are not fields of the entities source "
                             f"{sorted(entity_fields)}")

    # --- what the stages ask of a spec ----------------------------------------------------

    @property
    def entity_source(self) -> Source:
        return self.sources[self.task.entities]

    @property
    def label_source(self) -> Source:
        return self.sources[self.task.labels]

    def source_of(self, dataset: str) -> Source | None:
        """The source whose bronze is `dataset` (None for a dataset no source lands, e.g. features)."""
        return next((source for source in self.sources.values() if source.dataset == dataset), None)

    @property
    def target(self) -> str:
        return self.task.target

    @property
    def model_name(self) -> str:
        return self.name

    @property
    def predictions_topic(self) -> str:
        return self.sinks.predictions_topic

    @property
    def placements(self) -> dict[str, StoragePlacement]:
        return {dataset: StoragePlacement(p.tier, p.onprem_only) for dataset, p in self.storage.items()}

    @property
    def topics(self) -> list[str]:
        kinds = self.topics_of_kind()
        return [*kinds["predictions"], *kinds["sources"], *kinds["dead_letters"]]

    @property
    def cron(self) -> str:
        return SCHEDULES.get(self.schedule, self.schedule)

    def topics_of_kind(self) -> dict[str, list[str]]:
        """The pipeline's topics by the kinds `retention.topics` names."""
        kafka = [s for s in self.sources.values() if s.kind == "kafka"]
        return {"sources": [s.topic for s in kafka], "dead_letters": [self.dead_letter_topic(s) for s in kafka],
                "predictions": [self.predictions_topic]}

    def dead_letter_topic(self, source: Source) -> str:
        return source.topic + self.sinks.dead_letter_suffix

    def valid_dataset(self, source: str) -> str:
        """The dataset downstream stages read for `source`: its bronze rows that passed the contract."""
        return self.contracts[self.sources[source].dataset].valid_dataset

    @property
    def entity_dataset(self) -> str:
        return self.valid_dataset(self.task.entities)

    @property
    def label_dataset(self) -> str:
        return self.valid_dataset(self.task.labels)


def spec_path(name: str, directory: Path | None = None) -> Path:
    """The spec file of pipeline `name`; the name is checked first, so it cannot leave the folder."""
    if not re.fullmatch(NAME_PATTERN, name or ""):
        raise SpecError(f"{name!r} is not a pipeline name: use lower-case letters, digits and _ ({NAME_PATTERN})")
    return (directory or pipelines_dir()) / f"{name}.yaml"


def pipeline_names(directory: Path | None = None) -> list[str]:
    """The pipelines that have a spec file (the only choices a DAG form offers)."""
    return sorted(p.stem for p in (directory or pipelines_dir()).glob("*.yaml") if re.fullmatch(NAME_PATTERN, p.stem))


def load_spec(name: str, directory: Path | None = None) -> PipelineSpec:
    """Read and validate ``<directory>/<name>.yaml``; raise SpecError naming what is wrong."""
    path = spec_path(name, directory)
    if not path.exists():
        raise SpecError(f"no pipeline spec {path.name} in {path.parent}; "
                        f"known pipelines: {pipeline_names(path.parent)}")
    spec = parse_spec(yaml.safe_load(path.read_text()) or {}, path.name)
    if spec.name != name:
        raise SpecError(f"{path.name}: name: {spec.name!r} must equal the file name {name!r}")
    return spec


def parse_spec(raw: dict, origin: str = "spec") -> PipelineSpec:
    """Validate a spec document (already read from YAML); SpecError lists every problem."""
    try:
        return PipelineSpec.model_validate(raw)
    except ValidationError as error:
        problems = [_describe(e) for e in error.errors()]
        raise SpecError(f"{origin}: {len(problems)} problem(s)\n" + "\n".join(f"  {p}" for p in problems)) from None


def _describe(error: dict) -> str:
    """`path.in.yaml: what is wrong (what is allowed)` for one pydantic error."""
    path = ".".join(str(part) for part in error["loc"] if part != "function-after[...]")
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(error["loc"][:-1])
        message = f"unknown key{f'; allowed here: {allowed}' if allowed else ''}"
    elif error["type"] == "literal_error":
        message = f"{error['input']!r} is not allowed; {message.lower()}"
    return f"{path}: {message}" if path else message


def _allowed_keys(loc: tuple) -> list[str]:
    """The keys the spec model allows at `loc` (for 'unknown key' errors)."""
    model: Any = PipelineSpec
    for part in loc:
        if isinstance(part, int) or not (isinstance(model, type) and issubclass(model, BaseModel)):
            model = _inner_model(model)
            continue
        fields = {f.alias or n: f for n, f in model.model_fields.items()}
        if part not in fields:  # a key of a dict-valued field (a source name, a dataset ...)
            model = _inner_model(model)
            continue
        model = _inner_model(fields[part].annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return sorted(f.alias or n for n, f in model.model_fields.items())
    return []


def _inner_model(annotation: Any) -> Any:
    """The model inside dict[str, M], list[M], M | None ... (or the annotation itself)."""
    from typing import get_args

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        inner = _inner_model(arg)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner
    return annotation


def json_schema() -> dict:
    """JSON Schema of a spec file, for editors (`loopline spec schema`)."""
    schema = PipelineSpec.model_json_schema(by_alias=True)
    schema["title"] = "Loopline pipeline spec"
    return schema


def derived_spec(base: str, name: str, overrides: dict[str, Any] | None = None) -> dict:
    """A copy of pipeline `base`'s raw spec renamed to `name`, with its own topics
    (`<name>.<topic>`) and `overrides` merged into its top-level blocks (a value that is not
    a block replaces the setting). For throw-away pipelines (tests, benchmarks) that must not
    touch `base`'s data."""
    raw = yaml.safe_load((pipelines_dir() / f"{base}.yaml").read_text())
    raw["name"] = name
    for source in raw["sources"].values():
        if "topic" in source:
            source["topic"] = f"{name}.{source['topic']}"
    raw["sinks"]["predictions_topic"] = f"{name}.{raw['sinks']['predictions_topic']}"
    for block, values in (overrides or {}).items():
        raw[block] = {**raw.get(block, {}), **values} if isinstance(values, dict) else values
    return raw
