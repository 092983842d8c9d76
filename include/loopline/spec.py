"""Pipeline specs: one declarative YAML file per model pipeline, read into typed dataclasses.

The spec is the only place a pipeline's topics, schema, features, thresholds and storage
placement are written down; code takes a spec instead of hard-coding any of them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from loopline.storage import Placement

PIPELINES_DIR = Path(__file__).resolve().parent.parent / "pipelines"


def pipelines_dir() -> Path:
    """Where specs live: include/pipelines, or LOOPLINE_PIPELINES_DIR (deployments, tests)."""
    return Path(os.environ.get("LOOPLINE_PIPELINES_DIR", PIPELINES_DIR))
FIELD_TYPES = {"string", "timestamp", "double", "int", "boolean"}


class SpecError(ValueError):
    """A pipeline spec is missing something or contradicts itself."""


@dataclass(frozen=True)
class Schema:
    name: str
    key: str
    fields: dict[str, str]

    def __post_init__(self) -> None:
        unknown = {f"{k}: {v}" for k, v in self.fields.items() if v not in FIELD_TYPES}
        if unknown:
            raise SpecError(f"schema {self.name}: unsupported field types {sorted(unknown)}; use {sorted(FIELD_TYPES)}")
        if self.key not in self.fields:
            raise SpecError(f"schema {self.name}: key {self.key!r} is not one of its fields")


SOURCE_KINDS = {"kafka", "postgres", "files"}


@dataclass(frozen=True)
class Source:
    """Where one bronze dataset comes from: a Kafka topic, a PostgreSQL table read by a
    watermark column, or JSON-lines files landing under a prefix of a storage tier."""

    name: str
    dataset: str
    schema: Schema
    time_field: str  # partitions bronze by the date of this field (event time)
    kind: str = "kafka"
    topic: str = ""  # kafka
    table: str = ""  # postgres: schema.table
    watermark: str = ""  # postgres: monotonically increasing column (e.g. updated_at)
    connection_env: str = "LOOPLINE_DB_URL"  # postgres: environment variable holding the database URL
    landing_tier: str = ""  # files: tier holding the landing prefix
    landing_prefix: str = ""  # files: prefix (relative to the tier root) new files land under

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise SpecError(f"source {self.name}: kind {self.kind!r} is not one of {sorted(SOURCE_KINDS)}")
        required = {"kafka": ["topic"], "postgres": ["table", "watermark"], "files": ["landing_tier", "landing_prefix"]}
        missing = [name for name in required[self.kind] if not getattr(self, name)]
        if missing:
            raise SpecError(f"source {self.name} ({self.kind}): missing {missing}")
        if self.time_field not in self.schema.fields:
            raise SpecError(f"source {self.name}: time_field {self.time_field!r} is not in schema {self.schema.name}")


@dataclass(frozen=True)
class IngestLimits:
    max_record_bytes: int = 65536  # larger payloads are quarantined as `oversize`
    max_records_per_batch: int = 1_000_000  # upper bound of one Kafka micro-batch
    min_new_records: int = 1  # the ingest sensor waits for at least this many unread records
    wait_timeout_minutes: int = 360  # ... for at most this long, then fails naming the lag


@dataclass(frozen=True)
class Contract:
    """The data contract of one bronze dataset: its GX suite (expectations/<suite>.json) and
    where the rows that pass its row-level rules go. Downstream stages read only `valid_dataset`."""

    dataset: str
    suite: str
    valid_dataset: str
    max_quarantined_share: float = 0.02  # more rows than this failing row-level rules stops the line
    freshness_hours: float = 2.0  # the `freshness_cutoff` suite parameter: end of the date minus this

    def __post_init__(self) -> None:
        if not 0 <= self.max_quarantined_share <= 1:
            raise SpecError(f"contract {self.dataset}: max_quarantined_share must be between 0 and 1")


# Model settings every spec must give (read as plain dicts by training, the gate, monitoring).
REQUIRED_SETTINGS = {
    "training": ["model", "seed", "min_labelled_rows", "split", "retrain_window_days", "params"],
    "gate": ["primary_metric", "min_improvement"],
    "monitoring": ["drift_features", "psi_threshold", "feedback"],
}

ALERT_CHANNELS = {"log", "webhook", "email"}


@dataclass(frozen=True)
class AlertChannel:
    """Where a stopped line is reported. Addresses come from environment variables (never the
    spec); a channel whose variable is unset is inactive, and says so in the task log."""

    channel: str
    url_env: str = ""  # webhook: variable holding the URL to POST the alert to
    to_env: str = ""  # email: variable holding comma-separated recipients (SMTP: LOOPLINE_SMTP_*)

    def __post_init__(self) -> None:
        if self.channel not in ALERT_CHANNELS:
            raise SpecError(f"alert channel {self.channel!r} is not one of {sorted(ALERT_CHANNELS)}")
        needed = {"webhook": "url_env", "email": "to_env"}.get(self.channel)
        if needed and not getattr(self, needed):
            raise SpecError(f"alert channel {self.channel} needs {needed} (the environment variable to read)")


@dataclass(frozen=True)
class Features:
    numeric: list[str]
    boolean: list[str]
    categorical: dict[str, list[str]]
    home_country: str

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.boolean, *self.categorical]


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    description: str
    sources: dict[str, Source]
    predictions_topic: str
    dead_letter_suffix: str
    storage: dict[str, Placement]
    contracts: dict[str, Contract]  # by bronze dataset
    features: Features
    target: str
    training: dict[str, Any]
    gate: dict[str, Any]
    monitoring: dict[str, Any]
    ingest: IngestLimits = field(default_factory=IngestLimits)
    alerts: list[AlertChannel] = field(default_factory=lambda: [AlertChannel("log")])
    model_card: dict[str, str] = field(default_factory=dict)  # intended_use, limitations (loopline.model_card)
    topics: list[str] = field(init=False)

    def __post_init__(self) -> None:
        kafka = [s for s in self.sources.values() if s.kind == "kafka"]
        main_topics = [self.predictions_topic, *(s.topic for s in kafka)]
        object.__setattr__(self, "topics", main_topics + [self.dead_letter_topic(s) for s in kafka])
        uncontracted = sorted({s.dataset for s in self.sources.values()} - set(self.contracts))
        if uncontracted:
            raise SpecError(f"pipeline {self.name}: no contract for {uncontracted}; downstream stages read only "
                            "data that passed a contract, so every source needs one (see `loopline contract draft`)")
        datasets = ({s.dataset for s in self.sources.values()} | {c.valid_dataset for c in self.contracts.values()}
                    | {"quarantine", "predictions", "reference", "checkpoints", "contract_reports"})
        missing = sorted(datasets - set(self.storage))
        if missing:
            raise SpecError(f"pipeline {self.name}: storage placement missing for {missing}")
        unset = [f"{block}.{key}" for block, keys in REQUIRED_SETTINGS.items() for key in keys
                 if key not in getattr(self, block)]
        if unset:
            raise SpecError(f"pipeline {self.name}: settings missing: {unset} (card_fraud.yaml shows each one)")

    @property
    def model_name(self) -> str:
        return self.name

    def dead_letter_topic(self, source: Source) -> str:
        return source.topic + self.dead_letter_suffix

    def valid_dataset(self, source: str) -> str:
        """The dataset downstream stages read for `source`: its bronze rows that passed the contract."""
        return self.contracts[self.sources[source].dataset].valid_dataset


def _source(name: str, raw: dict, schemas: dict[str, Schema]) -> Source:
    fields = {k: v for k, v in raw.items() if k != "schema"}
    return Source(name=name, dataset=f"bronze_{name}", schema=schemas[raw["schema"]], **fields)


def load_spec(name: str, directory: Path | None = None) -> PipelineSpec:
    """Read ``<directory>/<name>.yaml``; raise SpecError naming what is wrong."""
    directory = directory or pipelines_dir()
    path = directory / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in directory.glob("*.yaml"))
        raise SpecError(f"no pipeline spec {path.name} in {directory}; known pipelines: {known}")
    raw = yaml.safe_load(path.read_text())
    try:
        schemas = {n: Schema(name=n, key=s["key"], fields=s["fields"]) for n, s in raw["schemas"].items()}
        sources = {name: _source(name, s, schemas) for name, s in raw["sources"].items()}
        return PipelineSpec(
            name=raw["name"],
            description=raw.get("description", ""),
            sources=sources,
            predictions_topic=raw["sinks"]["predictions_topic"],
            dead_letter_suffix=raw["sinks"]["dead_letter_suffix"],
            storage={dataset: Placement(**place) for dataset, place in raw["storage"].items()},
            contracts={dataset: Contract(dataset=dataset, **c) for dataset, c in raw["contracts"].items()},
            features=Features(**raw["features"]),
            target=raw["target"],
            training=raw["training"],
            gate=raw["gate"],
            monitoring=raw["monitoring"],
            ingest=IngestLimits(**raw.get("ingest", {})),
            alerts=[AlertChannel(**a) for a in raw.get("alerts", [{"channel": "log"}])],
            model_card=raw.get("model_card", {}),
        )
    except KeyError as error:
        raise SpecError(f"{path.name}: missing key {error}") from error
    except TypeError as error:  # an unknown key in a source, placement or ingest block
        raise SpecError(f"{path.name}: {error}") from error


def derived_spec(base: str, name: str, overrides: dict[str, dict] | None = None) -> dict:
    """A copy of pipeline `base`'s raw spec renamed to `name`, with its own topics
    (`<name>.<topic>`) and `overrides` merged into its top-level blocks. For throw-away
    pipelines (tests, benchmarks) that must not touch `base`'s data."""
    raw = yaml.safe_load((pipelines_dir() / f"{base}.yaml").read_text())
    raw["name"] = name
    for source in raw["sources"].values():
        if "topic" in source:
            source["topic"] = f"{name}.{source['topic']}"
    raw["sinks"]["predictions_topic"] = f"{name}.{raw['sinks']['predictions_topic']}"
    for block, values in (overrides or {}).items():
        raw[block] = {**raw.get(block, {}), **values}
    return raw
