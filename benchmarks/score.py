"""Scoring benchmark: Loopline's Spark scoring against in-process `Booster.predict` on one core.

One run: a throw-away pipeline gets a LightGBM model (trained on simulated payments,
registered in MLflow) and a valid-events partition of N rows written by Spark. Then:

  loopline  `loopline.scoring.predictions_frame` on the Spark Connect server (local[2]):
            read the partition, build features and predict with the registry version on
            Spark's Python workers (mapInPandas), drained to Spark's `noop` sink. This is
            the compute of the scoring job; the Parquet, PostgreSQL and Kafka writes that
            follow it in `score()` are not part of either side;
  baseline  the same rows already in memory (pandas), `build_features` then
            `Booster.predict(num_threads=1)` in this process.

One unmeasured warm-up each, then the median of REPEATS runs. rows/s = N / seconds;
ratio = loopline / baseline (higher is better).

    make bench                                 # 1M rows
    LOOPLINE_BENCH_SCORE_ROWS=100000 make bench

Writes benchmarks/results/score.json and prints a table.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from validate import write_partition  # noqa: E402 (the same bronze-like rows the contract benchmark uses)

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_RATIO = 1.0
REPEATS = 3
DAY = date(2026, 1, 15)


def register_model(p) -> int:
    """Train a small LightGBM model on simulated payments and register it; return its version."""
    import lightgbm as lgb
    import mlflow
    import mlflow.lightgbm
    import pandas as pd

    from loopline.features import build_features
    from loopline.simulate import SimulationConfig, transactions_for_day

    rows = pd.DataFrame([tx for d in range(1, 6) for tx in transactions_for_day(
        SimulationConfig(seed=4, transactions_per_day=3000), date(2026, 1, d))])
    params = {k: v for k, v in p.spec.training["params"]["lightgbm"].items() if k != "early_stopping_rounds"}
    rounds = params.pop("num_boost_round")
    booster = lgb.train({**params, "seed": 7, "num_threads": 1},
                        lgb.Dataset(build_features(rows, p.spec.features), rows["_is_fraud"]), num_boost_round=rounds)
    mlflow.set_experiment(p.spec.name)
    with mlflow.start_run():
        uri = mlflow.lightgbm.log_model(booster, name="model").model_uri
    return int(mlflow.register_model(uri, p.spec.model_name).version)


def median_seconds(run) -> float:
    times = []
    for _ in range(REPEATS + 1):  # the first run warms up (Python workers, model load, JIT)
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


def main() -> int:
    import pyarrow.parquet as pq

    from loopline.bootstrap import remove_pipeline_data
    from loopline.features import build_features
    from loopline.pipeline import Pipeline
    from loopline.registry import load_model
    from loopline.scoring import predictions_frame
    from loopline.spec import PIPELINES_DIR, derived_spec, load_spec

    rows = int(os.environ.get("LOOPLINE_BENCH_SCORE_ROWS", "1000000"))
    with tempfile.TemporaryDirectory() as tmp:
        for spec_file in PIPELINES_DIR.glob("*.yaml"):
            (Path(tmp) / spec_file.name).write_text(spec_file.read_text())
        os.environ["LOOPLINE_PIPELINES_DIR"] = tmp
        name = f"bench_{uuid.uuid4().hex[:8]}"
        (Path(tmp) / f"{name}.yaml").write_text(yaml.safe_dump(derived_spec("card_fraud", name)))
        p = Pipeline.load(name)
        try:
            version = register_model(p)
            location = p.lake.location(p.spec.valid_dataset("events"), DAY)
            write_partition(p.spark(), location.spark_uri, rows)
            loopline_s = median_seconds(
                lambda: predictions_frame(p, DAY, version).write.format("noop").mode("overwrite").save())
            frame = pq.read_table(location.arrow_path, filesystem=location.filesystem()).to_pandas()
            model = load_model(f"models:/{p.spec.model_name}/{version}")  # LightGBM predicts on one thread
            baseline_s = median_seconds(lambda: model.predict(build_features(frame, p.spec.features)))
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
              "baseline": "in-process build_features + Booster.predict(num_threads=1) on rows in memory",
              "cores": os.cpu_count()}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "score.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{'rows':>10} {'loopline s':>10} {'loopline rows/s':>15} {'baseline s':>10} {'baseline rows/s':>15} "
          f"{'ratio':>6}")
    print(f"{rows:>10} {loopline_s:>10.3f} {result['loopline_rows_per_s']:>15} {baseline_s:>10.3f} "
          f"{result['baseline_rows_per_s']:>15} {result['ratio']:>6}")
    print(f"target ratio >= {TARGET_RATIO}: {'met' if result['meets_target'] else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
