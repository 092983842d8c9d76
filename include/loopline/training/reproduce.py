"""Retrain a registered version from its recorded inputs and check that its metrics come back.

The training run of version N recorded its recipe (model type, parameters, seed, features),
the row ids of each split and each split's data hash. Retraining reads the same labelled
rows from the lake as known on N's training date, keeps exactly the recorded rows, checks
their hash (the lake may have changed since: a relabelled transaction, a rewritten
partition), fits the recorded recipe and compares every metric with N's.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

import pandas as pd

from loopline.core.run_artifacts import INPUTS_ARTIFACT, ROW_IDS_ARTIFACT
from loopline.training import data
from loopline.training.train import Recipe, fit_and_log

if TYPE_CHECKING:
    from loopline.core.pipeline import Pipeline

TOLERANCE = 1e-9  # the fit is deterministic (fixed seed, one thread): metrics match to rounding


class ReproductionError(RuntimeError):
    """Version N's recorded inputs cannot be rebuilt from the lake as they were."""


@dataclass(frozen=True)
class Reproduction:
    model_name: str
    version: int
    original_run_id: str
    run_id: str
    metrics: dict[str, tuple[float, float]]  # metric -> (version N, retrained)

    @property
    def reproduced(self) -> bool:
        return all(math.isclose(a, b, rel_tol=0, abs_tol=TOLERANCE) for a, b in self.metrics.values())

    def describe(self) -> str:
        lines = [f"{self.model_name} v{self.version} (run {self.original_run_id}) retrained as run {self.run_id}: "
                 + ("metrics REPRODUCED" if self.reproduced else "metrics DIFFER")]
        lines += [f"  {name:<28} {old:.10f}  {new:.10f}  ({new - old:+.2e})"
                  for name, (old, new) in sorted(self.metrics.items())]
        return "\n".join(lines)


def recorded_splits(rows: pd.DataFrame, key: str, row_ids: pd.DataFrame, inputs: dict,
                    recipe: Recipe) -> dict[str, pd.DataFrame]:
    """The recorded rows of each split, in training order, checked against their recorded hash."""
    splits = {}
    for name in data.SPLITS:
        wanted = row_ids.loc[row_ids["split"] == name, "entity_key"]
        frame = rows[rows[key].astype(str).isin(wanted)].reset_index(drop=True)
        record = inputs["splits"][name]
        if len(frame) != len(wanted):
            raise ReproductionError(f"{len(wanted) - len(frame)} of the {len(wanted)} {name} rows are no longer "
                                    "in the lake (were partitions rewritten or removed?)")
        if data.data_hash(data.model_rows(frame, recipe.stored_columns)) != record["data_hash"]:
            raise ReproductionError(f"the {name} rows changed since training (data hash differs): a label or an "
                                    f"event of {', '.join(record['event_dates'])} was rewritten in the lake")
        splits[name] = frame
    return splits


def retrain_from_version(p: "Pipeline", version: int) -> Reproduction:
    """Fit version `version`'s recorded recipe on its recorded rows; log it as a new run
    (tag `loopline.reproduces_version`), never registered; compare the metrics."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client, name = MlflowClient(), p.spec.model_name
    try:
        original = client.get_run(client.get_model_version(name, str(version)).run_id)
        inputs = json.loads(mlflow.artifacts.load_text(f"runs:/{original.info.run_id}/{INPUTS_ARTIFACT}"))
        row_ids = pd.read_parquet(mlflow.artifacts.download_artifacts(run_id=original.info.run_id,
                                                                      artifact_path=ROW_IDS_ARTIFACT))
    except MlflowException as error:
        raise ReproductionError(f"{name} v{version} has no recorded training inputs ({INPUTS_ARTIFACT}): it was not "
                                f"trained by loopline.training.train, or its run is gone ({error.message})") from error
    trained_until = date.fromisoformat(inputs["trained_until"])
    rows = data.labelled_rows(p.lake, p.spec, trained_until).rows
    recipe = Recipe.from_record(inputs["recipe"])
    splits = recorded_splits(rows, p.spec.entity_source.key, row_ids, inputs, recipe)
    tags = {"pipeline": p.spec.name, "logical_date": trained_until.isoformat(),
            "loopline.reproduces_version": str(version), "loopline.reproduces_run": original.info.run_id}
    result = fit_and_log(p.spec, recipe, splits, inputs, f"reproduce-v{version}", tags)
    retrained = client.get_run(result.run_id).data.metrics
    return Reproduction(name, version, original.info.run_id, result.run_id,
                        {k: (v, retrained.get(k, math.nan)) for k, v in original.data.metrics.items()})
