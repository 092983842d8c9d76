"""Scoring benchmark: Loopline's Spark scoring against in-process `Booster.predict` on one core.

One run: a throw-away pipeline gets a LightGBM model (trained on simulated payments,
registered in MLflow) and a valid-events partition of N rows written by Spark. Then:

  loopline  `loopline.scoring.score.predictions_frame` on the Spark Connect server (local[2]):
            read the partition, build features and predict with the registry version on
            Spark's Python workers (mapInPandas), drained to Spark's `noop` sink. This is
            the compute of the scoring job; the Parquet, PostgreSQL and Kafka writes that
            follow it in `score()` are not part of either side;
  baseline  the same rows already in memory (pandas), the model's feature builder then
            `Booster.predict(num_threads=1)` in this process.

One unmeasured warm-up each, then the median of REPEATS runs. rows/s = N / seconds;
ratio = loopline / baseline (higher is better).

    make bench                                 # 1M rows
    LOOPLINE_BENCH_SCORE_ROWS=100000 make bench

Writes benchmarks/results/score.json and prints a table.
"""
from __future__ import annotations

import os
import sys
import uuid
from datetime import date
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import median_after_warm_up, report, scratch_pipelines  # noqa: E402
from validate import write_partition  # noqa: E402 (the same bronze-like rows the contract benchmark uses)

TARGET_RATIO = 1.0
REPEATS = 3
DAY = date(2026, 1, 15)


def register_model(p) -> int:
    """Train a small LightGBM model on simulated payments and register it; return its version."""
    import lightgbm as lgb
    import mlflow
    import pandas as pd

    from loopline.core.spec import pipelines_dir
    from loopline.models.features import FeatureBuilder
    from loopline.models.store import log_model, register_version
    from loopline.models.types import model_type

    sys.path.insert(0, str(pipelines_dir()))  # card_fraud's simulator lives beside its spec
    from card_fraud_simulator import SimulationConfig, transactions_for_day

    rows = pd.DataFrame([tx for d in range(1, 6) for tx in transactions_for_day(
        SimulationConfig(seed=4, transactions_per_day=3000), date(2026, 1, d))])
    params = {k: v for k, v in p.spec.training.params["lightgbm"].items() if k != "early_stopping_rounds"}
    rounds = params.pop("num_boost_round")
    builder = FeatureBuilder.for_spec(p.spec.features, pipelines_dir())
    booster = lgb.train({**params, "seed": 7, "num_threads": 1}, lgb.Dataset(builder.build(rows), rows["_is_fraud"]),
                        num_boost_round=rounds)
    mlflow.set_experiment(p.spec.name)
    with mlflow.start_run():
        uri = log_model(model_type("lightgbm"), booster, p.spec.task.type, builder).model_uri
    return register_version(p.settings.db_url, p.spec.name, uri, p.spec.model_name)


def main() -> int:
    import pyarrow.parquet as pq

    from loopline.core.interval import Interval
    from loopline.core.pipeline import Pipeline
    from loopline.core.spec import derived_spec, load_spec
    from loopline.models.store import load_version
    from loopline.ops.bootstrap import remove_pipeline_data
    from loopline.scoring.score import predictions_frame

    rows = int(os.environ.get("LOOPLINE_BENCH_SCORE_ROWS", "1000000"))
    with scratch_pipelines() as pipelines:
        name = f"bench_{uuid.uuid4().hex[:8]}"
        (pipelines / f"{name}.yaml").write_text(yaml.safe_dump(derived_spec("card_fraud", name)))
        p = Pipeline.load(name)
        try:
            version = register_model(p)
            location = p.lake.location(p.spec.entity_dataset, DAY)
            write_partition(p.spark(), location.spark_uri, rows)
            loopline_s, _ = median_after_warm_up(
                lambda: predictions_frame(p, Interval.of_day(DAY), version).write.format("noop").mode("overwrite").save(), REPEATS)
            frame = pq.read_table(location.arrow_path, filesystem=location.filesystem()).to_pandas()
            model = load_version(p.settings.db_url, p.spec.model_name, version)  # LightGBM predicts on one thread
            baseline_s, _ = median_after_warm_up(lambda: model.score(frame),
                                                 REPEATS)
        finally:
            remove_pipeline_data(p.settings, load_spec(name))
            from mlflow import MlflowClient

            MlflowClient().delete_registered_model(p.spec.model_name)
    result = {"rows": rows, "loopline_s": round(loopline_s, 3), "baseline_s": round(baseline_s, 3),
              "loopline_rows_per_s": round(rows / loopline_s), "baseline_rows_per_s": round(rows / baseline_s),
              "ratio": round(baseline_s / loopline_s, 3), "target": TARGET_RATIO,
              "meets_target": baseline_s / loopline_s >= TARGET_RATIO, "repeats": REPEATS,
              "statistic": "median after one warm-up",
              "loopline": "Spark Connect local[2]: read Parquet, features, registry model in mapInPandas, noop sink",
              "baseline": "in-process feature builder + Booster.predict(num_threads=1) on rows in memory",
              "cores": os.cpu_count()}
    report("score", result, [{"rows": rows, "loopline s": round(loopline_s, 3),
                              "loopline rows/s": result["loopline_rows_per_s"], "baseline s": round(baseline_s, 3),
                              "baseline rows/s": result["baseline_rows_per_s"], "ratio": result["ratio"]}])
    print(f"target ratio >= {TARGET_RATIO}: {'met' if result['meets_target'] else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
