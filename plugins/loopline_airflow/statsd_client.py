"""Airflow's StatsD client (`[metrics] statsd_custom_client_path`), its socket connected to the
collector. statsd's own client sends from an unconnected UDP socket, which stays open on every
interface for the process's life; a connected one is bound to the collector's loopback
address and takes datagrams from the collector alone."""
from statsd import StatsClient


class ConnectedStatsClient(StatsClient):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._sock.connect(self._addr)
