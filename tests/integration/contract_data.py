"""Bronze partitions for contract tests: simulated payments, written as ingest writes them."""
from __future__ import annotations

from datetime import date, datetime

import pandas as pd

from card_fraud_simulator import SimulationConfig, transactions_for_day

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
    """Replace `dataset`'s partition for `day` with `frame` (one ingest batch directory)."""
    location = p.lake.location(dataset, day)
    location.filesystem().delete_dir_contents(location.arrow_path, missing_dir_ok=True)
    p.spark().createDataFrame(frame, ddl).write.parquet(location.child("ingest_batch=0").spark_uri)
