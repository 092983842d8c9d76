"""How much a Spark task pays to get a session: Spark Connect (remote) vs a new local JVM.

    source .loopline/env
    .venv/bin/python benchmarks/spark_session_cost.py                    # via the Connect server
    env -u SPARK_REMOTE .venv/bin/python benchmarks/spark_session_cost.py  # a local session per task
"""
import os
import time

t0 = time.perf_counter()
from loopline.core.config import Settings
from loopline.core.spark import get_spark
s = get_spark(Settings.from_env())
t1 = time.perf_counter()
n = s.range(1_000_000).selectExpr("sum(id)").collect()[0][0]
t2 = time.perf_counter()
print(f"{'remote' if os.environ.get('SPARK_REMOTE') else 'local'}: session {t1-t0:.1f}s, first query {t2-t1:.1f}s, total {t2-t0:.1f}s")
