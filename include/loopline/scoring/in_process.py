"""Scoring a small run in the task's own process (spec `engine`): the model applied to the
valid entities read with pyarrow, batch by batch, as Spark's Python workers apply it.

Each batch reaches the model as the same pandas frame Spark hands `mapInPandas` (columns in
file order, then `date` as a date), so the predictions are the same (tests/integration/
test_scoring_engines.py scores one day both ways). The table has the columns and types of
the Spark path's predictions, and is written by partitions.replace_table in Spark's layout.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from loopline.models.store import load_version

if TYPE_CHECKING:
    import pyarrow.dataset as ds

    from loopline.core.pipeline import Pipeline

# The Spark path's predictions as Spark writes them: event times as INT96 (read back as ns),
# the constant columns not null.
PREDICTIONS = pa.schema([
    pa.field("prediction_id", pa.string()), pa.field("pipeline", pa.string(), nullable=False),
    pa.field("score_date", pa.date32()), pa.field("entity_key", pa.string()), pa.field("event_time", pa.timestamp("ns")),
    pa.field("task", pa.string(), nullable=False), pa.field("prediction", pa.float64()),
    pa.field("model_version", pa.int32(), nullable=False)])


def predictions_table(p: "Pipeline", entities: "ds.Dataset", model_version: int) -> "pa.Table":
    """The entities scored by `model_version` (checked against its recorded digests), in the
    columns of loopline.scoring.publish.MESSAGE_FIELDS."""
    import pandas as pd

    spec, source = p.spec, p.spec.entity_source
    model = load_version(p.settings.db_url, spec.model_name, model_version)
    scored = []
    for batch in entities.to_batches():
        if not batch.num_rows:
            continue
        frame = batch.to_pandas()
        frame["date"] = pd.to_datetime(frame["date"]).dt.date  # Spark reads the folder key as a date
        keys = frame[source.key].astype(str)
        rows = len(frame)
        scored.append(pa.Table.from_pydict({
            "prediction_id": f"{spec.name}:" + keys, "pipeline": [spec.name] * rows, "score_date": frame["date"],
            "entity_key": keys, "event_time": batch.column(source.time_field), "task": [spec.task.type] * rows,
            "prediction": model.score(frame), "model_version": [model_version] * rows,
        }, schema=PREDICTIONS))
    return pa.concat_tables(scored) if scored else PREDICTIONS.empty_table()
