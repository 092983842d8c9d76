"""docs/authoring.md followed literally, on the real stack, from `new-pipeline` to the first
promoted model: every ```bash step``` block runs in a shell as written and every ```yaml edit```
block is merged into the file it names. The only change is the pipeline's name (so the test
touches none of bike_demand's data). The result must be the committed bike_demand pipeline:
the same spec and the same contracts, name aside.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "authoring.md"
BLOCK = re.compile(r"^```(bash step|yaml edit (\S+))\n(.*?)^```$", re.S | re.M)
PIPELINE = re.compile(r"\bbike_demand(?!_dataset)")  # the pipeline's name, not the dataset script's


def guide_steps() -> list[tuple[str, str | None, str]]:
    """(kind, edited file or None, text) of each runnable block, in the guide's order."""
    return [("edit" if edited else "run", edited, text) for _, edited, text in BLOCK.findall(GUIDE.read_text())]


def merge(base: dict, edit: dict) -> dict:
    for key, value in edit.items():
        base[key] = merge(base.get(key, {}), value) if isinstance(value, dict) and isinstance(base.get(key), dict) \
            else value
    return base


def renamed(document, name: str):
    """A document with every occurrence of the test pipeline's name put back to bike_demand."""
    return yaml.safe_load(yaml.safe_dump(document).replace(name, "bike_demand"))


@pytest.fixture(scope="module")
def followed(make_pipeline, tmp_path_factory):
    """Run the guide's steps in a scratch folder laid out like the repository."""
    name = f"it_bike_{uuid.uuid4().hex[:6]}"
    root = tmp_path_factory.mktemp("guide")
    (root / "include").mkdir()
    (root / "include" / "pipelines").symlink_to(make_pipeline.pipelines)
    (root / "expectations").symlink_to(make_pipeline.expectations)
    (root / "dags").mkdir()
    (root / ".loopline").symlink_to(Path(os.environ["LOOPLINE_STATE_DIR"]))
    env = {**os.environ, "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}", "LOOPLINE_DAGS_DIR": str(root / "dags")}
    make_pipeline.created.append(name)  # removed with the other test pipelines
    for kind, edited, text in guide_steps():
        text = PIPELINE.sub(name, text)
        if kind == "edit":
            target = root / PIPELINE.sub(name, edited)
            target.write_text(yaml.safe_dump(merge(yaml.safe_load(target.read_text()), yaml.safe_load(text)),
                                             sort_keys=False))  # field order is column order
            continue
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", text], cwd=root, env=env, capture_output=True,
                              text=True, timeout=900)
        assert done.returncode == 0, f"guide step failed:\n{text}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return name, root


def test_the_guide_writes_the_committed_bike_demand_pipeline(followed):
    name, root = followed
    written = yaml.safe_load((root / "include" / "pipelines" / f"{name}.yaml").read_text())
    committed = yaml.safe_load((REPO / "include" / "pipelines" / "bike_demand.yaml").read_text())
    assert renamed(written, name) == committed
    for source in ("hours", "rentals"):
        drafted = json.loads((root / "expectations" / f"{name}_{source}.json").read_text())
        reviewed = json.loads((REPO / "expectations" / f"bike_demand_{source}.json").read_text())
        assert renamed(drafted, name) == reviewed, source
    assert sorted(p.name for p in (root / "dags").iterdir()) == [f"{name}_nightly.py", f"{name}_retrain.py"]
    assert not (root / "include" / "pipelines" / f"{name}_features.py").exists()


def test_the_first_month_promotes_a_model_that_scores_the_next_month(followed, dag_for):
    """Scoring is point-in-time: January's model learned from January, so it scores February."""
    from loopline.core import db
    from loopline.core.pipeline import Pipeline

    name, _ = followed
    dag = dag_for(name)
    january = dag.test(logical_date=datetime.now(timezone.utc),
                       run_conf={"first_date": "2011-01-01", "last_date": "2011-01-31"})
    tasks = {ti.task_id: ti.state for ti in january.get_task_instances()}
    assert january.state == "success" and tasks["score"] == "skipped", tasks
    february = dag.test(logical_date=datetime.now(timezone.utc),
                        run_conf={"first_date": "2011-02-01", "last_date": "2011-02-28", "retrain": False})
    tasks = {ti.task_id: ti.state for ti in february.get_task_instances()}
    assert february.state == "success" and tasks["score"] == "success", tasks
    p = Pipeline.load(name)
    with db.connect(p.settings.db_url) as conn:
        [trained] = db.fetch_all(conn, "SELECT * FROM loopline.training_runs WHERE pipeline = %s", (name,))
        predictions = db.fetch_all(conn, "SELECT count(*) AS n, array_agg(DISTINCT model_version) AS versions, "
                                         "min(score_date) AS first, max(score_date) AS last FROM loopline.predictions "
                                         "WHERE pipeline = %s", (name,))[0]
        monitored = db.fetch_all(conn, "SELECT logical_date, last_date, rows_scored FROM loopline.monitor_runs "
                                       "WHERE pipeline = %s", (name,))
    assert trained["promoted"] and trained["decision"] == "no champion yet" and trained["primary_metric"] == "rmse"
    assert trained["candidate_score"] < 150  # rentals per hour; predicting the mean would be about 180
    assert predictions["n"] > 600 and predictions["versions"] == [trained["model_version"]]  # February's hours
    assert (predictions["first"], predictions["last"]) == (date(2011, 2, 1), date(2011, 2, 28))
    # drift is judged once for the month, on all its hours, not on each day's 24
    assert [(m["logical_date"], m["last_date"], m["rows_scored"]) for m in monitored] == [
        (date(2011, 2, 1), date(2011, 2, 28), predictions["n"])]
