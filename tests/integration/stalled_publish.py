"""A score attempt whose publish stalls with its Kafka transaction open and every message on
the broker: test_exactly_once_publish runs it as a process and kills it there, the moment a
publish is most exposed. Arguments as spark_jobs/score.py's."""
from __future__ import annotations

import runpy
import sys
import time

from loopline.core.config import REPOSITORY
from loopline.scoring.publish import Publisher

send = Publisher._send


def send_then_stall(self: Publisher, rows, batch: str) -> int:
    sent = send(self, rows, batch)
    self.producer.flush(60)  # on the broker, uncommitted
    time.sleep(3600)
    return sent


Publisher._send = send_then_stall
sys.argv = [str(REPOSITORY / "spark_jobs" / "score.py"), *sys.argv[1:]]
runpy.run_path(sys.argv[0], run_name="__main__")
