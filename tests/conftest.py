"""Shared test setup: DAG code imports `loopline_airflow` from plugins/ as Airflow does; the
demo pipelines' own tooling (the card_fraud simulator) imports from include/pipelines/; a
real local HTTP endpoint for the webhook alert channel."""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
for folder in (REPO / "plugins", REPO / "include" / "pipelines"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


@pytest.fixture
def http_endpoint():
    """(URL, list of received JSON bodies) of an HTTP server on localhost that accepts POSTs."""
    received = []

    class Collect(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Collect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()
