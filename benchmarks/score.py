"""Scoring benchmark: the whole scoring task against the floor of its own writes, in one run.

One run: a throw-away pipeline gets a LightGBM model (trained on simulated payments,
registered in MLflow) and a valid-events partition of N card payments, each id once, written
by Spark. Then, each timed from call to return:

  loopline  `loopline.scoring.score.score`, as the `score` task runs it: read the partition,
            build the features and predict with the registry version on Spark's Python
            workers, replace the date's Parquet, then read the written files once: the rows
            COPY'd into loopline.predictions with the date's record, and every prediction
            published in one Kafka transaction.
            Before each run the pipeline's predictions and scoring records are deleted
            (not timed), so every run writes and publishes every row, as a date's first run does;
  floor     the same read, features and predictions (`predictions_frame`) written to
            Parquet by Spark, then the written rows read by pyarrow and copied with COPY (CSV)
            into loopline.predictions (emptied of the pipeline's rows first, untimed): what
            scoring's compute and its two bulk writes cost here at least, with no records,
            no Kafka and no replacing of earlier rows;
  publish   Loopline's Kafka publish on its own, nothing else running: the date's written
            predictions read and sent by the scoring publisher in one transaction. Not part of
            the floor (the issue's floor has no Kafka); it shows what the publish adds to a
            2-core machine whose cores the floor already keeps busy.

One unmeasured warm-up each, then the median of REPEATS runs. ratio = loopline / floor
(lower is better); the target is <= TARGET_RATIO.

    make bench                                          # 1M rows
    LOOPLINE_BENCH_SCORE_ROWS=1000000,10000000 make bench  # and 10M

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
from validate import write_partition  # noqa: E402 (the contract benchmark's rows, each id once)

TARGET_RATIO = 1.3
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
    return register_version(p.settings.db_url, p.spec.model_name, uri, p.spec.model_name)


def forget_scores(p) -> None:
    """The pipeline's predictions and scoring records removed: the next run is a first run."""
    from loopline.core import db

    with db.connect(p.settings.db_url) as conn, conn.cursor() as cur:
        for table in ("predictions", "score_runs"):
            cur.execute(f"DELETE FROM loopline.{table} WHERE pipeline = %s", (p.spec.name,))


def empty_predictions_topic(p) -> None:
    """Every message on the pipeline's predictions topic deleted: at 10M rows each publish puts
    gigabytes on the broker's disk, and the broker keeps everything (no retention)."""
    from confluent_kafka import OFFSET_END, TopicPartition
    from confluent_kafka.admin import AdminClient

    admin, topic = AdminClient(p.settings.kafka("admin").librdkafka()), p.spec.predictions_topic
    partitions = admin.list_topics(topic, timeout=60).topics[topic].partitions
    for deleted in admin.delete_records([TopicPartition(topic, n, OFFSET_END) for n in partitions]).values():
        deleted.result()


def reset_run(p) -> None:
    """Before each run, not timed: a first run's state, and the broker's disk freed."""
    forget_scores(p)
    empty_predictions_topic(p)


def copy_into(db_url: str, location) -> int:
    """COPY the Parquet rows at `location` into loopline.predictions, batch by batch, in one
    transaction, with scoring's own reader and CSV encoder; return the rows."""
    import pyarrow.dataset as ds

    from loopline.core import db
    from loopline.scoring.score import copy_batch, prediction_batches

    copied = 0
    with db.connect(db_url) as conn, conn.cursor() as cur:
        files = ds.dataset(location.arrow_path, filesystem=location.filesystem(), format="parquet")
        for batch in prediction_batches([files]):
            copy_batch(cur, "loopline.predictions", batch)
            copied += batch.num_rows
    return copied


def publish_alone(p) -> int:
    """The scoring publisher sending the date's written predictions in one Kafka transaction,
    as scoring does, with nothing else running; return the messages sent. The scoring records
    are left as they were (the transaction marks nothing in PostgreSQL)."""
    import pyarrow.dataset as ds

    from loopline.core import db
    from loopline.scoring.publish import Publisher
    from loopline.scoring.score import prediction_batches

    location = p.lake.location("predictions", DAY)
    files = ds.dataset(location.arrow_path, filesystem=location.filesystem(), format="parquet")
    publisher, sent = Publisher(p), 0
    with db.connect(p.settings.db_url) as conn:
        with publisher.transaction(conn, {DAY.isoformat(): files.count_rows()}) as intent:
            for batch in prediction_batches([files]):
                sent += publisher.send(intent, batch)
        conn.rollback()
    return sent


def bench_size(p, version: int, rows: int) -> dict:
    """One size: a fresh partition of `rows` payments, Loopline's scoring and the floor on it."""
    from loopline.core.interval import Interval
    from loopline.scoring.score import predictions_frame, score

    interval = Interval.of_day(DAY)
    write_partition(p.spark(), p.lake.location(p.spec.entity_dataset, DAY).spark_uri, rows, repeated_ids=False)
    loopline_s, scored = median_after_warm_up(lambda: score(p, interval, version), REPEATS,
                                              reset=lambda: reset_run(p))
    floor_parquet = p.lake.location("predictions", subdir="_bench_floor")  # a folder Spark's readers skip

    def floor() -> int:
        predictions_frame(p, interval, version).write.mode("overwrite").parquet(floor_parquet.spark_uri)
        return copy_into(p.settings.db_url, floor_parquet)

    floor_s, copied = median_after_warm_up(floor, REPEATS, reset=lambda: forget_scores(p))
    publish_s, sent = median_after_warm_up(lambda: publish_alone(p), REPEATS,
                                           reset=lambda: empty_predictions_topic(p))
    if not scored.rows == scored.published == copied == sent == rows:
        raise RuntimeError(f"{rows} rows: scoring wrote {scored.rows} and published {scored.published}, "
                           f"the floor copied {copied}, the publish alone sent {sent}")
    ratio = loopline_s / floor_s
    return {"rows": rows, "loopline_s": round(loopline_s, 3), "floor_s": round(floor_s, 3),
            "loopline_rows_per_s": round(rows / loopline_s), "floor_rows_per_s": round(rows / floor_s),
            "ratio": round(ratio, 3), "meets_target": ratio <= TARGET_RATIO,
            "publish_alone_s": round(publish_s, 3), "publish_share_of_floor": round(publish_s / floor_s, 3)}


def main() -> int:
    from mlflow import MlflowClient

    from loopline.core.pipeline import Pipeline
    from loopline.core.spec import derived_spec, load_spec
    from loopline.ops.bootstrap import ensure_topics, remove_pipeline_data

    sizes = [int(rows) for rows in os.environ.get("LOOPLINE_BENCH_SCORE_ROWS", "1000000").split(",")]
    with scratch_pipelines() as pipelines:
        name = f"bench_{uuid.uuid4().hex[:8]}"
        (pipelines / f"{name}.yaml").write_text(yaml.safe_dump(derived_spec("card_fraud", name)))
        p = Pipeline.load(name)
        ensure_topics(p.settings, [p.spec])
        try:
            version = register_model(p)
            points = [bench_size(p, version, rows) for rows in sizes]
        finally:
            remove_pipeline_data(p.settings, load_spec(name))
            MlflowClient().delete_registered_model(p.spec.model_name)
    result = {"target": f"loopline / floor <= {TARGET_RATIO} at every size",
              "meets_target": all(point["meets_target"] for point in points),
              "repeats": REPEATS, "statistic": "median after one warm-up",
              "loopline": "loopline.scoring.score.score: read, features, registry model in mapInPandas, Parquet, "
                          "one pyarrow pass over the written files: COPY into loopline.predictions + records, "
                          "Kafka publish in one transaction",
              "floor": "predictions_frame written to Parquet by Spark, then pyarrow reads it and COPY (CSV) puts it "
                       "in loopline.predictions",
              "publish_alone": "not part of the floor: the scoring publisher sending the written predictions in one "
                               "Kafka transaction with nothing else running (what the publish adds to busy cores)",
              "spark_master": os.environ.get("LOOPLINE_SPARK_MASTER", "local[2]"), "cores": os.cpu_count(),
              "points": points}
    report("score", result, [{"rows": pt["rows"], "loopline s": pt["loopline_s"], "floor s": pt["floor_s"],
                              "ratio": pt["ratio"], "publish alone s": pt["publish_alone_s"]} for pt in points])
    print(f"target loopline / floor <= {TARGET_RATIO} at every size: {'met' if result['meets_target'] else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
