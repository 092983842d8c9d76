"""A score attempt that stalls between its two commits: the database's (predictions, records,
publish intent) is done, the Kafka transaction is open with every message on the broker.
test_exactly_once_publish runs it as a process and kills it there, the moment a publish is
most exposed. Arguments as spark_jobs/score.py's."""
from __future__ import annotations

import runpy
import sys
import time
from contextlib import contextmanager

from loopline.core.config import REPOSITORY
from loopline.scoring.publish import Publisher

transaction = Publisher.transaction


@contextmanager
def stall_before_the_kafka_commit(self: Publisher, conn, rows_by_date: dict[str, int]):
    with transaction(self, conn, rows_by_date) as intent:
        yield intent
        self.producer.flush(60)  # on the broker, uncommitted
        time.sleep(3600)


Publisher.transaction = stall_before_the_kafka_commit
sys.argv = [str(REPOSITORY / "spark_jobs" / "score.py"), *sys.argv[1:]]
runpy.run_path(sys.argv[0], run_name="__main__")
