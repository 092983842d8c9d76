"""Model features from valid event rows: one function shared by training and scoring.

Categoricals get a fixed vocabulary from the spec (unseen values become missing), so a
model and the data it scores always agree on category codes.
"""
from __future__ import annotations

import pandas as pd

from loopline.spec import Features


# The event columns build_features reads besides the spec's categorical columns.
EVENT_COLUMNS = ["event_time", "amount", "customer_tx_count_30d", "customer_avg_amount_30d", "is_new_device", "country"]


def source_columns(features: Features) -> list[str]:
    """Every event column the features are built from: what a model's stored rows must keep
    (and all they keep: e.g. customer ids never leave the on-prem tier this way)."""
    return list(dict.fromkeys([*EVENT_COLUMNS, *features.categorical]))


def build_features(rows: pd.DataFrame, features: Features) -> pd.DataFrame:
    """Feature frame in the spec's column order; pure, no I/O."""
    event_time = pd.to_datetime(rows["event_time"], utc=True)
    derived = pd.DataFrame(index=rows.index)
    derived["amount"] = rows["amount"].astype("float64")
    derived["hour"] = (event_time.dt.hour + event_time.dt.minute / 60).astype("float64")
    derived["customer_tx_count_30d"] = rows["customer_tx_count_30d"].astype("float64")
    derived["customer_avg_amount_30d"] = rows["customer_avg_amount_30d"].astype("float64")
    derived["amount_to_avg_ratio"] = derived["amount"] / derived["customer_avg_amount_30d"].clip(lower=1.0)
    derived["is_new_device"] = rows["is_new_device"].astype("float64")
    derived["is_foreign"] = (rows["country"] != features.home_country).astype("float64")
    for column, vocabulary in features.categorical.items():
        derived[column] = pd.Categorical(rows[column], categories=vocabulary)
    return derived[features.columns]
