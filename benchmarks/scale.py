"""`make bench-scale`: how the nightly stages' wall time grows with a day's size, on the stack
of the current profile (local, or cluster: docs/scaling.md).

For each size (1M and 10M events by default), a throw-away pipeline derived from card_fraud
gets one day of N card-payment events in its topic (written by Spark, not timed). Then the
stages run as the nightly tasks run them, each timed from call to return:

  ingest    loopline.ingest.streaming.ingest_source: topic -> bronze Parquet, quarantine,
            reconciliation, records (the `ingest` task)
  validate  loopline.contracts.validate.validate_dataset: the events' contract through GX,
            rows routed to the valid dataset (the `validate_<dataset>` task)
  score     loopline.scoring.score.score: features, the registered model's predictions,
            Parquet, PostgreSQL and the predictions topic (the `score` task)

Each stage runs once per size (10M events take minutes), after one unmeasured run of every
stage on 100k events. The ratio is seconds(largest) / seconds(smallest); with sizes 10x apart,
the goal is <= 11 (cost no worse than linear, plus 10%). A 2-core machine cannot show a
cluster's speed-up: the point is that the same code runs on both profiles, and how it scales.

    make bench-scale                                   # this profile's stack
    LOOPLINE_BENCH_SCALE_SIZES=100000,1000000 make bench-scale   # sizes of 86,400 or more

Writes benchmarks/results/scale-<profile>.json and prints a table.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Callable, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import environment, report, scratch_pipelines, throwaway_pipeline  # noqa: E402
from ingest import produce_events  # noqa: E402 (the ingest benchmark's events)
from score import register_model  # noqa: E402 (the scoring benchmark's model)

WARM_UP_ROWS = 100_000  # at least a day's seconds: the events then cover the day (the contract checks freshness)
GOAL_RATIO = 11.0
DAY = date(2026, 1, 15)
STAGES = ("ingest", "validate", "score")
Outcome = TypeVar("Outcome")


def sizes() -> list[int]:
    return [int(n) for n in os.environ.get("LOOPLINE_BENCH_SCALE_SIZES", "1000000,10000000").split(",")]


def timed(call: Callable[[], Outcome]) -> tuple[Outcome, float]:
    started = time.perf_counter()
    outcome = call()
    return outcome, time.perf_counter() - started


@contextmanager
def contracts_admitting(rows: int) -> Iterator[None]:
    """A scratch copy of the contracts whose volume rules admit `rows` a day, made this
    process's contracts for the block: a scale run is no real day, and card_fraud's contract
    stops the line above 5M."""
    from loopline.contracts.rules import expectations_dir

    with tempfile.TemporaryDirectory(prefix="loopline-bench-contracts-") as tmp:
        for suite_file in expectations_dir().glob("*.json"):
            suite = json.loads(suite_file.read_text())
            for expectation in suite.get("expectations", []):
                ceiling = expectation["kwargs"].get("max_value")
                if expectation["type"] == "expect_table_row_count_to_be_between" and ceiling is not None:
                    expectation["kwargs"]["max_value"] = max(ceiling, rows)
            (Path(tmp) / suite_file.name).write_text(json.dumps(suite))
        with environment("LOOPLINE_EXPECTATIONS_DIR", tmp):
            yield


def run_stages(rows: int, pipelines: Path) -> dict:
    """One day of `rows` events through ingest, validate and score; seconds per stage."""
    from loopline.contracts.validate import validate_dataset
    from loopline.core.interval import Interval
    from loopline.ingest.streaming import ingest_source
    from loopline.scoring.score import score

    with throwaway_pipeline(pipelines) as p:
        events, interval = p.spec.entity_source, Interval.of_day(DAY)
        spark = p.spark()
        # ten payments per customer: the contract wants at least 5% distinct customers in a day
        produce_events(spark, p.settings.kafka("producer"), events.topic, rows, customers=rows // 10)
        version = register_model(p)
        seconds = {}
        ingested, seconds["ingest"] = timed(lambda: ingest_source(spark, p, events, "bench", DAY))
        checked, seconds["validate"] = timed(lambda: validate_dataset(p, events.dataset, interval, "bench"))
        scored, seconds["score"] = timed(lambda: score(p, interval, version))
        if not (ingested.accepted == checked.rows_in == rows and scored.rows == checked.rows_valid > 0):
            raise RuntimeError(f"{rows} events: ingest accepted {ingested.accepted}, the contract saw "
                               f"{checked.rows_in} ({checked.rows_valid} valid), scoring wrote {scored.rows}")
        return {"rows": rows, **{f"{stage}_s": round(seconds[stage], 2) for stage in STAGES},
                "valid_rows": checked.rows_valid, "published": scored.published}


def main() -> int:
    profile = os.environ.get("LOOPLINE_PROFILE", "local")
    wanted = sizes()
    with scratch_pipelines() as pipelines, contracts_admitting(max(wanted)):
        run_stages(WARM_UP_ROWS, pipelines)  # JIT, Python workers, the model's first load: not measured
        points = [run_stages(rows, pipelines) for rows in wanted]
    small, large = points[0], points[-1]
    ratios = {stage: round(large[f"{stage}_s"] / small[f"{stage}_s"], 2) for stage in STAGES}
    size_ratio = large["rows"] / small["rows"]
    result = {"profile": profile, "spark_master": os.environ.get("LOOPLINE_SPARK_MASTER", "local[2]"),
              "kafka_brokers": len(os.environ.get("LOOPLINE_KAFKA_BOOTSTRAP", "").split(",")),
              "executor": os.environ.get("AIRFLOW__CORE__EXECUTOR", ""), "cores": os.cpu_count(),
              "size_ratio": size_ratio, "wall_ratio": ratios,
              "goal": f"wall ratio <= {GOAL_RATIO} for {size_ratio:.0f}x the events" if size_ratio == 10 else
                      f"wall ratio <= {GOAL_RATIO / 10 * size_ratio:.1f} for {size_ratio:.0f}x the events",
              "meets_goal": {stage: ratios[stage] <= GOAL_RATIO / 10 * size_ratio for stage in STAGES},
              "statistic": "one timed run per size, after one unmeasured run of every stage on 100k events",
              "points": points}
    report(f"scale-{profile}", result, [{"rows": pt["rows"], **{f"{s} s": pt[f"{s}_s"] for s in STAGES},
                                         "valid": pt["valid_rows"], "published": pt["published"]} for pt in points])
    print(f"wall ratio {large['rows']:,} / {small['rows']:,} events on the {profile} profile: "
          + ", ".join(f"{s} {ratios[s]}" for s in STAGES) + f" (goal <= {GOAL_RATIO / 10 * size_ratio:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
