"""Airflow glue for Loopline: thin adapters from task context to `include/loopline`."""
