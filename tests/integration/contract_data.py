"""Bronze partitions for contract tests: simulated payments, written as ingest writes them."""
from __future__ import annotations

from datetime import date, datetime

import pandas as pd

from card_fraud_simulator import SimulationConfig, transactions_for_day
from loopline.core import db

LINEAGE = {"source": "test", "source_partition": 0}
EVENTS_DDL = ("transaction_id string, customer_id string, event_time timestamp, amount double, "
              "merchant_category string, country string, channel string, is_new_device boolean, "
              "customer_tx_count_30d int, customer_avg_amount_30d double, schema_version int, "
              "source string, source_partition int, source_offset bigint")


def payments(day: date, n: int, seed: int = 5) -> pd.DataFrame:
    """`n` valid payments of `day` as bronze columns (without the ingest_batch directory key)."""
    rows = [{k: v for k, v in tx.items() if not k.startswith("_")}
            for tx in transactions_for_day(SimulationConfig(seed=seed, transactions_per_day=n), day)]
    frame = pd.DataFrame(rows).assign(**LINEAGE, source_offset=range(n))
    frame["event_time"] = [datetime.fromisoformat(t).replace(tzinfo=None) for t in frame["event_time"]]
    return frame


def write_bronze(p, dataset: str, day: date, frame: pd.DataFrame, ddl: str = EVENTS_DDL) -> None:
    """Replace `dataset`'s partition for `day` with `frame` (one ingest batch directory); for a
    source's bronze, record the batch as ingest does."""
    location = p.lake.location(dataset, day)
    location.filesystem().delete_dir_contents(location.arrow_path, missing_dir_ok=True)
    p.spark().createDataFrame(frame, ddl).write.parquet(location.child("ingest_batch=0").spark_uri)
    if p.spec.source_of(dataset) is not None:
        record_batch(p, dataset, 0, {day.isoformat(): len(frame)})


def record_batch(p, dataset: str, batch: int, accepted_by_date: dict[str, int]) -> None:
    """Record ingest batch `batch` of `dataset`, adding its dates to an earlier record of it."""
    with db.connect(p.settings.db_url) as conn, conn.cursor() as cursor:
        cursor.execute("""
            INSERT INTO loopline.ingest_batches (pipeline, dataset, batch_id, run_id, logical_date, source, offsets,
                consumed, accepted, quarantined, accepted_by_date, quarantined_by_date)
            VALUES (%(p)s, %(d)s, %(b)s, 'test', current_date, 'test', '{}', %(n)s, %(n)s, 0, %(dates)s, '{}')
            ON CONFLICT (pipeline, dataset, batch_id) DO UPDATE SET
                accepted_by_date = ingest_batches.accepted_by_date || EXCLUDED.accepted_by_date""",
                       {"p": p.spec.name, "d": dataset, "b": batch, "n": sum(accepted_by_date.values()),
                        "dates": db.as_json(accepted_by_date)})
