"""A Celery worker's identity in Airflow's records ([core] hostname_callable).

A task instance's hostname says where it ran. The cluster profile runs its Celery workers on
one machine, so the host alone cannot tell them apart: each worker's name comes first, as
Celery names its nodes (`airflow-celery-worker-2@host`). On separate machines the host is
already enough, and this callable is not configured.
"""
from __future__ import annotations

import os
import socket


def hostname() -> str:
    """`<worker>@<fully qualified host name>`, or the host name alone outside a named worker."""
    host = socket.getfqdn()
    worker = os.environ.get("LOOPLINE_WORKER_NAME")
    return f"{worker}@{host}" if worker else host
