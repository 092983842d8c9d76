"""spark-submit entry point: ingest what is new in every source of a pipeline into bronze.

    spark-submit --jars "$(tr ':' ',' < .loopline/classpath/spark.cp)" spark_jobs/ingest.py \
        --pipeline card_fraud --date 2026-11-20

Same code path as the Airflow task; with SPARK_REMOTE set it runs on the Spark Connect server.
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict
from datetime import datetime, timezone

from loopline.ingest.streaming import ingest_pipeline
from loopline.ops.cli import job_arguments


def main(argv: list[str] | None = None) -> int:
    pipeline, interval = job_arguments(__doc__.splitlines()[0], argv)
    spark = pipeline.spark()
    run_id = f"spark-submit__{datetime.now(timezone.utc).isoformat()}"
    for run in ingest_pipeline(spark, pipeline, run_id, interval.first).values():
        print(json.dumps(asdict(run)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
