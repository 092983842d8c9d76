"""Batch scoring into the lake, PostgreSQL and Kafka."""
