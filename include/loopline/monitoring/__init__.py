"""Drift, realised performance on returned labels (and automatic rollback), the run summary."""
