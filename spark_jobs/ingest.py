"""spark-submit entry point: ingest one logical date of a pipeline (every source) into bronze.

    spark-submit --jars "$(tr ':' ',' < .loopline/classpath/spark.cp)" spark_jobs/ingest.py \
        --pipeline card_fraud --date 2026-11-20

Same code path as the Airflow task; with SPARK_REMOTE set it runs on the Spark Connect server.
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict

from loopline.cli import job_arguments
from loopline.ingest import ingest


def main(argv: list[str] | None = None) -> int:
    pipeline, day = job_arguments(__doc__.splitlines()[0], argv)
    spark = pipeline.spark()
    for kind in pipeline.spec.sources:
        result = ingest(spark, pipeline.settings, pipeline.spec, pipeline.lake, kind, day, run_id="spark-submit")
        print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
