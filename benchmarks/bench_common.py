"""What the benchmarks share: a scratch pipelines folder and throw-away pipelines in it, a
scoped environment variable, the median of timed runs after a warm-up, and writing and
printing the result."""
from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
import uuid
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Callable, Iterator, TypeVar

RESULTS = Path(__file__).resolve().parent / "results"
Outcome = TypeVar("Outcome")


@contextmanager
def scratch_pipelines() -> Iterator[Path]:
    """A temporary copy of the pipeline specs and feature modules, made the pipelines folder for
    this process, so the benchmarks' throw-away pipelines never land in include/pipelines."""
    from loopline.core.spec import PIPELINES_DIR

    with tempfile.TemporaryDirectory(prefix="loopline-bench-pipelines-") as tmp:
        for pipeline_file in [*PIPELINES_DIR.glob("*.yaml"), *PIPELINES_DIR.glob("*.py")]:
            (Path(tmp) / pipeline_file.name).write_text(pipeline_file.read_text())
        with environment("LOOPLINE_PIPELINES_DIR", tmp):
            yield Path(tmp)


@contextmanager
def throwaway_pipeline(pipelines: Path):
    """A card_fraud copy under a unique name in the scratch `pipelines` folder, with its topics
    (micro-batches of up to 1M records); everything it leaves on the services goes at the end."""
    import yaml
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from loopline.core.pipeline import Pipeline
    from loopline.core.spec import derived_spec, load_spec
    from loopline.ops.bootstrap import ensure_topics, remove_pipeline_data

    name = f"bench_{uuid.uuid4().hex[:8]}"
    (pipelines / f"{name}.yaml").write_text(yaml.safe_dump(derived_spec(
        "card_fraud", name, {"ingest": {"max_records_per_batch": 1_000_000}})))
    p = Pipeline.load(name)
    ensure_topics(p.settings, [p.spec])
    try:
        yield p
    finally:
        remove_pipeline_data(p.settings, load_spec(name))
        with suppress(MlflowException):  # a benchmark that registers no model leaves none
            MlflowClient().delete_registered_model(p.spec.model_name)


@contextmanager
def environment(name: str, value: str) -> Iterator[None]:
    """`name` set to `value` in this process's environment until the block ends, then as it was."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def median_after_warm_up(run: Callable[[], Outcome], repeats: int,
                         reset: Callable[[], None] = lambda: None) -> tuple[float, Outcome]:
    """Run once unmeasured (JIT, caches, Python workers, model load), then `repeats` times:
    the median seconds, and what the last run returned. `reset` runs, unmeasured, before each
    run: a run that writes may need its outputs removed to do the same work again."""
    reset()
    run()
    return median_of(run, repeats, reset)


def median_of(run: Callable[[], Outcome], repeats: int,
              reset: Callable[[], None] = lambda: None) -> tuple[float, Outcome]:
    """The median seconds of `repeats` runs (`reset` before each, not timed), and what the last
    run returned."""
    times, outcome = [], None
    for _ in range(repeats):
        reset()
        started = time.perf_counter()
        outcome = run()
        times.append(time.perf_counter() - started)
    return statistics.median(times), outcome


def report(name: str, result: dict, table: list[dict[str, object]]) -> None:
    """Write benchmarks/results/<name>.json and print `table` (rows of header -> value)."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    widths = {h: max(len(h), *(len(str(row[h])) for row in table)) for h in table[0]}
    print("\n" + " ".join(h.rjust(w) for h, w in widths.items()))
    for row in table:
        print(" ".join(str(row[h]).rjust(w) for h, w in widths.items()))
