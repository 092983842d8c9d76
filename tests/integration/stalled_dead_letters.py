"""An ingest run that stalls once a batch's dead letters are on their topic, before the batch
is recorded: test_ingest_exactly_once runs it as a process and kills it there, the moment a
batch's dead letters are most exposed. Arguments as spark_jobs/ingest.py's."""
from __future__ import annotations

import runpy
import sys
import time

from loopline.core.config import REPOSITORY
from loopline.ingest import landing

publish_dead_letters = landing.publish_dead_letters


def stall_after_publishing(*args, **kwargs) -> None:
    publish_dead_letters(*args, **kwargs)  # flushed: every dead letter is on the broker
    time.sleep(3600)


landing.publish_dead_letters = stall_after_publishing
sys.argv = [str(REPOSITORY / "spark_jobs" / "ingest.py"), *sys.argv[1:]]
runpy.run_path(sys.argv[0], run_name="__main__")
