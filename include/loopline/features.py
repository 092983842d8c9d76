"""Model features from valid event rows: one function shared by training and scoring.

Categoricals get a fixed vocabulary from the spec (unseen values become missing), so a
model and the data it scores always agree on category codes.
"""
from __future__ import annotations

import pandas as pd

from loopline.spec import Features


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
