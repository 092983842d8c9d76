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


@dataclass(frozen=True)
class Source:
    dataset: str
    topic: str
    schema: Schema


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
    storage: dict[str, str]
    contract_dataset: str
    contract_suite: str
    features: Features
    target: str
    training: dict[str, Any]
    gate: dict[str, Any]
    monitoring: dict[str, Any]
    topics: list[str] = field(init=False)

    def __post_init__(self) -> None:
        main_topics = [self.predictions_topic, *(s.topic for s in self.sources.values())]
        dead_letters = [s.topic + self.dead_letter_suffix for s in self.sources.values()]
        object.__setattr__(self, "topics", main_topics + dead_letters)
        datasets = {s.dataset for s in self.sources.values()} | {"quarantine", "predictions", "reference"}
        missing = sorted(datasets - set(self.storage))
        if missing:
            raise SpecError(f"pipeline {self.name}: storage placement missing for {missing}")

    @property
    def model_name(self) -> str:
        return self.name


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
        sources = {
            kind: Source(dataset=f"bronze_{kind}", topic=s["topic"], schema=schemas[s["schema"]])
            for kind, s in raw["sources"].items()
        }
        return PipelineSpec(
            name=raw["name"],
            description=raw.get("description", ""),
            sources=sources,
            predictions_topic=raw["sinks"]["predictions_topic"],
            dead_letter_suffix=raw["sinks"]["dead_letter_suffix"],
            storage=raw["storage"],
            contract_dataset=raw["contract"]["dataset"],
            contract_suite=raw["contract"]["suite"],
            features=Features(**raw["features"]),
            target=raw["target"],
            training=raw["training"],
            gate=raw["gate"],
            monitoring=raw["monitoring"],
        )
    except KeyError as error:
        raise SpecError(f"{path.name}: missing key {error}") from error
