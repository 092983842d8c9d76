"""Retention (spec `retention`), applied by `loopline gc`.

Lake: a date partition older than its dataset's days is deleted, unless a registered model
version's lineage names it: the partitions it trained on, the bronze partitions they were
validated from, and those dates' quarantine (`loopline retrain --from-version` and the
model card still read them). Topics: the spec's retention.ms and retention.bytes are set on
the broker per kind of topic (sources, dead letters, predictions). A plan is computed
first; a dry run (the default) shows it and changes nothing.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

from loopline.core.pipeline import Pipeline
from loopline.core.run_artifacts import INPUTS_ARTIFACT
from loopline.core.spec import PipelineSpec
from loopline.core.storage import Lake

DATE_KEY = "date="


@dataclass(frozen=True)
class Partition:
    dataset: str
    subdir: str  # "" or the folder between dataset and date (quarantine/<dataset>/date=D)
    day: date
    uri: str


@dataclass
class GcPlan:
    as_of: date
    expired: list[Partition] = field(default_factory=list)
    kept_for_lineage: dict[str, list[int]] = field(default_factory=dict)  # URI -> model versions naming it
    topic_configs: dict[str, dict[str, str]] = field(default_factory=dict)  # topic -> configs to set

    def describe(self, applied: bool) -> str:
        verb = "deleted" if applied else "would delete"
        lines = [f"retention as of {self.as_of}: {verb} {len(self.expired)} partitions"]
        lines += [f"  {p.uri}" for p in self.expired]
        lines += [f"kept (past retention, named by the lineage of model versions {versions}): {uri}"
                  for uri, versions in self.kept_for_lineage.items()]
        lines += [f"topic {topic}: {'set' if applied else 'would set'} {configs}"
                  for topic, configs in self.topic_configs.items()]
        if not applied:
            lines.append("dry run: nothing changed; run with --apply to do it")
        return "\n".join(lines)


def partitions(lake: Lake, dataset: str) -> list[Partition]:
    """Every date partition of `dataset`, at its top or one folder down (quarantine/<dataset>/);
    staging folders (`_...`) are not partitions."""
    from pyarrow.fs import FileSelector, FileType

    def folders(subdir: str) -> list[str]:
        location = lake.location(dataset, subdir=subdir)
        infos = location.filesystem().get_file_info(FileSelector(location.arrow_path, allow_not_found=True))
        return sorted(i.base_name for i in infos if i.type == FileType.Directory and not i.base_name.startswith("_"))

    found = []
    for name in folders(""):
        for subdir, folder in ([("", name)] if name.startswith(DATE_KEY) else [(name, f) for f in folders(name)]):
            try:
                day = date.fromisoformat(folder.removeprefix(DATE_KEY))
            except ValueError:
                continue  # not a date partition (e.g. a checkpoint's own folders)
            found.append(Partition(dataset, subdir, day, lake.location(dataset, day, subdir=subdir).spark_uri))
    return found


def lineage(spec: PipelineSpec) -> dict[tuple[str, date], list[int]]:
    """(dataset, date) -> the registered versions whose training inputs name that partition,
    directly or as the bronze partition it was validated from."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    bronze_of = {c.valid_dataset: c.dataset for c in spec.contracts.values()}
    named: dict[tuple[str, date], list[int]] = defaultdict(list)
    for version in MlflowClient().search_model_versions(f"name = '{spec.model_name}'"):
        try:
            path = mlflow.artifacts.download_artifacts(run_id=version.run_id, artifact_path=INPUTS_ARTIFACT)
        except (MlflowException, OSError):
            continue  # registered without Loopline's training (no recorded inputs): it names nothing
        with open(path) as recorded:
            inputs = json.load(recorded)
        for part in inputs.get("partitions", []):
            day = date.fromisoformat(part["date"])
            for dataset in filter(None, (part["dataset"], bronze_of.get(part["dataset"]))):
                named[(dataset, day)].append(int(version.version))
    return named


def plan(p: Pipeline, as_of: date) -> GcPlan:
    """What retention removes and sets as of `as_of` (nothing is changed)."""
    retention, planned = p.spec.retention, GcPlan(as_of)
    named = lineage(p.spec) if retention.datasets else {}
    for dataset, days in retention.datasets.items():
        cutoff = as_of - timedelta(days=days)
        for partition in partitions(p.lake, dataset):
            if partition.day >= cutoff:
                continue
            versions = named.get((partition.dataset, partition.day)) or named.get((partition.subdir, partition.day))
            if versions:
                planned.kept_for_lineage[partition.uri] = sorted(set(versions))
            else:
                planned.expired.append(partition)
    kinds = p.spec.topics_of_kind()
    planned.topic_configs = {topic: configured.configs() for kind, configured in retention.topics.items()
                             for topic in kinds[kind] if configured.configs()}
    return planned


def apply(p: Pipeline, planned: GcPlan) -> None:
    """Delete the expired partitions and set the topics' retention (as the Kafka admin)."""
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    for partition in planned.expired:
        location = p.lake.location(partition.dataset, partition.day, subdir=partition.subdir)
        location.filesystem().delete_dir(location.arrow_path)
    if planned.topic_configs:
        admin = KafkaAdminClient(**p.settings.kafka("admin").python(), client_id="loopline-gc")
        try:
            admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=configs)
                                 for topic, configs in planned.topic_configs.items()])
        finally:
            admin.close()
