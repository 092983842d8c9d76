"""Loopline's pipeline metrics, sent as StatsD with DogStatsD tags: the channel Airflow's own
metrics use, so one collector takes both (statsd_exporter for Prometheus here; a Datadog
agent, or any StatsD/DogStatsD receiver, elsewhere: see docs/monitoring.md).

Every metric is named `loopline.<what>` and tagged with its pipeline. Gauges hold the last
value (a date's PSI, the champion's version); counters add up (rows, rollbacks). Sending is
fire-and-forget UDP to LOOPLINE_STATSD_ADDRESS (host:port); unset, nothing is sent. A metric
that cannot be sent is logged, never raised: monitoring must not stop the line.
"""
from __future__ import annotations

import logging
import os
import re
import socket

ADDRESS_ENV = "LOOPLINE_STATSD_ADDRESS"
PREFIX = "loopline"
log = logging.getLogger(__name__)


def gauge(name: str, value: float, **tags: object) -> None:
    _send(f"{PREFIX}.{name}:{float(value)!r}|g{_tags(tags)}")


def count(name: str, value: int = 1, **tags: object) -> None:
    _send(f"{PREFIX}.{name}:{int(value)}|c{_tags(tags)}")


def _tags(tags: dict[str, object]) -> str:
    """DogStatsD tags; characters the line format uses are replaced in values."""
    return "|#" + ",".join(f"{key}:{re.sub(r'[|,#:@]', '_', str(value))}" for key, value in tags.items()) if tags else ""


def _send(line: str) -> None:
    address = os.environ.get(ADDRESS_ENV)
    if not address:
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect((host, int(port)))  # bound to the collector's side only, and for one datagram
            sock.send(line.encode())
    except (OSError, ValueError) as error:
        log.warning("metric not sent to %s (%s): %s", address, error, line)
