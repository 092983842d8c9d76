"""A stage's partitions are replaced all at once, or not at all (real Spark and lake).

New rows are staged under `_staging/`, checked, and only then moved into place: a refused or
failed write leaves the previous output where readers look. Scoring's check refuses NaN and
infinite predictions with the count per date.
"""
from __future__ import annotations

from datetime import date

import pytest

from kafka_records import read_dataset
from loopline.core import partitions
from loopline.core.interval import Interval
from loopline.core.pipeline import Pipeline
from loopline.scoring.score import NonFinitePredictions, require_finite

INTERVAL = Interval(date(2026, 5, 4), date(2026, 5, 5))
DATASET = "predictions"


def _frame(p: Pipeline, predictions: dict[str, list[float]]):
    from pyspark.sql import functions as F

    rows = [(f"{day}-{i}", day, value) for day, values in predictions.items() for i, value in enumerate(values)]
    return (p.spark().createDataFrame(rows, "entity_key string, day string, prediction double")
            .withColumn("score_date", F.to_date("day")).drop("day"))


def _replace(p: Pipeline, predictions: dict[str, list[float]], check=None):
    from pyspark.sql import functions as F

    return partitions.replace(p, _frame(p, predictions), DATASET, INTERVAL, F.col("score_date"), check=check)


def _on_storage(p: Pipeline) -> dict[str, list[float]]:
    table = read_dataset(p.lake.location(DATASET)).to_pylist()
    return {day: sorted(r["prediction"] for r in table if str(r["date"]) == day)
            for day in sorted({str(r["date"]) for r in table})}


@pytest.fixture
def p(make_pipeline):
    return Pipeline.load(make_pipeline())


def test_a_replacement_moves_its_dates_into_place_and_leaves_no_staging(p):
    _replace(p, {"2026-05-04": [0.1, 0.2], "2026-05-05": [0.3]})
    written = _replace(p, {"2026-05-04": [0.4]})  # a rerun whose second date has no rows any more

    assert _on_storage(p) == {"2026-05-04": [0.4]}
    assert written.count() == 1
    assert not _staging_entries(p)


def test_a_refused_replacement_leaves_the_previous_output_whole(p):
    check = require_finite(p.spec.model_name, 7)
    _replace(p, {"2026-05-04": [0.1, 0.2], "2026-05-05": [0.3]}, check=check)
    with pytest.raises(NonFinitePredictions, match=r"v7 gave NaN or infinite predictions: 2026-05-04: 2 of 3, "
                                                   r"2026-05-05: 1 of 2\. Nothing of this run was written"):
        _replace(p, {"2026-05-04": [0.5, float("nan"), float("inf")], "2026-05-05": [0.6, float("-inf")]},
                 check=check)

    assert _on_storage(p) == {"2026-05-04": [0.1, 0.2], "2026-05-05": [0.3]}
    assert not _staging_entries(p)


def _staging_entries(p: Pipeline) -> list[str]:
    """Files left under `_staging/` (an object store may keep listing an emptied prefix)."""
    from pyarrow import fs

    staging = p.lake.location(DATASET).child("_staging")
    if not staging.exists():
        return []
    return [info.path for info in staging.filesystem().get_file_info(fs.FileSelector(staging.arrow_path, recursive=True))
            if info.type == fs.FileType.File]
