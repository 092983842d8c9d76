"""spark-submit entry point: score a run's dates of a pipeline (the point-in-time champion, or the version that first scored them).

    spark-submit --jars "$(tr ':' ',' < .loopline/classpath/spark.cp)" spark_jobs/score.py \
        --pipeline card_fraud --date 2026-11-20 [--to 2026-11-26]

Same code path as the Airflow task; with SPARK_REMOTE set it runs on the Spark Connect server.
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict

from loopline.ops.cli import job_arguments
from loopline.scoring.score import NoPointInTimeModel, score, scoring_version


def main(argv: list[str] | None = None) -> int:
    pipeline, interval = job_arguments(__doc__.splitlines()[0], argv)
    try:
        version = scoring_version(pipeline, interval.first)
    except NoPointInTimeModel as unscorable:
        print(f"error: {unscorable}", file=sys.stderr)
        return 2
    if version is None:
        print(f"error: pipeline {pipeline.spec.name} has no champion model yet; run training first", file=sys.stderr)
        return 2
    result = score(pipeline, interval, version)
    print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
