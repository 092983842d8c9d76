"""Assets that connect Loopline's DAGs (declared once, imported by producer and consumer)."""
from __future__ import annotations

from airflow.sdk import Asset


def retrain_request(pipeline: str) -> Asset:
    """Emitted by the nightly loop when drift passes the threshold; schedules retraining."""
    return Asset(name=f"{pipeline}_retrain_request", uri=f"loopline://{pipeline}/retrain-request")


def bronze_ingested(pipeline: str) -> Asset:
    """Emitted by every ingest run; its extra holds the row counts per source."""
    return Asset(name=f"{pipeline}_bronze", uri=f"loopline://{pipeline}/bronze")
