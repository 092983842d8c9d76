"""card_fraud's derived features: a pure function of entity rows (no I/O), named in the spec.

Loopline logs this file with every model it trains, so a registered version keeps scoring
with the code it was trained with even after this file changes.
"""
from __future__ import annotations

import pandas as pd

HOME_COUNTRY = "DE"  # the issuer's country: payments elsewhere are foreign


def derive(rows: pd.DataFrame) -> pd.DataFrame:
    """hour (with minutes, UTC), amount relative to the customer's 30-day average, and whether
    the payment is foreign; reads event_time, amount, customer_avg_amount_30d and country."""
    event_time = pd.to_datetime(rows["event_time"], utc=True)
    amount = rows["amount"].astype("float64")
    return pd.DataFrame({
        "hour": (event_time.dt.hour + event_time.dt.minute / 60).astype("float64"),
        "amount_to_avg_ratio": amount / rows["customer_avg_amount_30d"].astype("float64").clip(lower=1.0),
        "is_foreign": (rows["country"] != HOME_COUNTRY).astype("float64"),
    }, index=rows.index)
