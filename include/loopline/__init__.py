"""Loopline: the product's logic as a plain Python package, importable without Airflow."""
