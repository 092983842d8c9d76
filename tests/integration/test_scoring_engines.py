"""The two scoring engines on the same day and model: Spark, and the in-process one a small
run gets (spec `engine.in_process_below_rows`). Same predictions in Parquet (every column,
same types), in PostgreSQL and on the topic."""
from __future__ import annotations

import pyarrow.dataset as ds

from scoring_drill import DAY, assert_same_outputs, outputs, scored_pipeline
from loopline.core.interval import Interval
from loopline.core.pipeline import Pipeline
from loopline.scoring.score import score, scoring_version

ROWS = 3_000
ENGINES = {"spark": 0, "in_process": 1_000_000}


def written(p: Pipeline):
    location = p.lake.location("predictions", DAY)
    rows = ds.dataset(location.arrow_path, filesystem=location.filesystem(), format="parquet").to_table()
    return rows.sort_by("entity_key")


def test_a_day_scored_in_process_equals_the_day_scored_by_spark(make_pipeline):
    pipelines = {engine: scored_pipeline(make_pipeline, ROWS, below) for engine, below in ENGINES.items()}
    results = {engine: score(p, Interval.of_day(DAY), scoring_version(p, DAY)) for engine, p in pipelines.items()}
    assert {engine: r.engine for engine, r in results.items()} == {e: e for e in ENGINES}
    assert results["spark"].rows == results["in_process"].rows == ROWS
    spark, local = (written(pipelines[engine]) for engine in ENGINES)
    assert spark.schema.remove_metadata() == local.schema  # Spark adds its own schema as metadata
    assert spark.drop_columns(["prediction_id", "pipeline"]).equals(local.drop_columns(["prediction_id", "pipeline"]))
    assert_same_outputs(outputs(pipelines["in_process"]), outputs(pipelines["spark"]))
    schemas = {engine: p.spark().read.parquet(p.lake.location("predictions", DAY).spark_uri).schema.simpleString()
               for engine, p in pipelines.items()}
    assert schemas["spark"] == schemas["in_process"]
