"""Shared test setup: DAG code imports `loopline_airflow` from plugins/ as Airflow does."""
import sys
from pathlib import Path

PLUGINS = str(Path(__file__).resolve().parents[1] / "plugins")
if PLUGINS not in sys.path:
    sys.path.insert(0, PLUGINS)
