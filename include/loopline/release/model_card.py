"""Model cards: one page per registered version, Markdown and HTML, stored with the model's artifacts.

A card answers what a reviewer asks before trusting a version: what it is for, what data it
learned from (partitions, rows, Kafka offsets, the contract results of those partitions),
how it scores overall and per critical slice against the champion it was compared with,
what the gate decided and why, which code and packages built it, and where to look next.
`render` is pure (facts in, Markdown out); `publish` gathers the facts from MLflow.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from loopline.core.interval import date_span
from loopline.core.spec import Features, PipelineSpec
from loopline.models.store import DOCUMENTATION_DIR

CARD_DIR = DOCUMENTATION_DIR  # outside the model's digests: written after registration, never loaded
MARKDOWN, HTML = f"{CARD_DIR}/model_card.md", f"{CARD_DIR}/model_card.html"
HTML_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.45}}
table{{border-collapse:collapse;margin:.5rem 0 1rem}}td,th{{border:1px solid #ccc;padding:.25rem .6rem;text-align:left}}
th{{background:#f3f3f3}}code{{background:#f6f6f6;padding:0 .2rem}}</style></head>
<body>
{body}</body></html>
"""


def _table(headers: list[str], rows: Iterable[Iterable[Any]]) -> list[str]:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4f}"
        return "-" if value is None else str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return [*lines, ""]


def _training(inputs: dict, feature_columns: list[str]) -> list[str]:
    recipe = inputs["recipe"]
    lines = ["## Model", "", f"- Type: `{recipe['model_type']}` ({recipe['task']}), seed {recipe['seed']}",
              "- Parameters: " + ", ".join(f"`{k}={v}`" for k, v in sorted(recipe["params"].items())),
              "- Features: " + ", ".join(f"`{c}`" for c in feature_columns),
              f"- Target: `{recipe['target']}`", ""]
    lines += ["## Training data", "",
              f"Labelled rows known on {inputs['trained_until']}"
              + (f", last {inputs['window_days']} days" if inputs.get("window_days") else "")
              + f"; data hash `{inputs['data_hash'][:16]}`.", ""]
    summary = "positives" if recipe["task"] == "binary" else "target_mean"
    lines += _table(["split", "event dates", "rows", summary.replace("_", " "), "data hash"],
                    [(name, date_span(s["event_dates"]), s["rows"], s[summary], s["data_hash"][:16])
                     for name, s in inputs["splits"].items()])
    if inputs.get("null_target_rows"):
        lines += [f"Left out: {inputs['null_target_rows']} entities whose latest label has a null target.", ""]
    lines += ["Source partitions:", ""]
    lines += _table(["dataset", "date", "rows"], [(p["dataset"], p["date"], p["rows"]) for p in inputs["partitions"]])
    lines += ["Kafka offset ranges behind them:", ""]
    lines += _table(["dataset", "topic", "partition", "first offset", "last offset", "rows"],
                    [(o["dataset"], o["source"], o["partition"], o["first"], o["last"], o["rows"])
                     for o in inputs["kafka_offsets"]])
    lines += ["Contract results of those partitions:", ""]
    lines += _table(["dataset", "date", "passed", "rows in", "valid", "quarantined", "report"],
                    [(c["dataset"], c["date"], c["success"], c["rows_in"], c["rows_valid"], c["rows_quarantined"],
                      f"[GX report]({c['report_uri']})" if c["report_uri"] else None) for c in inputs["contracts"]])
    return lines


def _metrics(facts: dict) -> list[str]:
    gate, run, metric = facts["gate"], facts["run"], facts["gate"]["primary_metric"]
    champion = f"champion v{gate['champion_version']}" if gate.get("champion_version") else "no champion"
    lines = ["## Metrics", "", f"On the holdout, against {champion} on the same rows:", ""]
    lines += _table(["metric", "this version", "validation split"],
                    [(m, run["metrics"].get(m), run["metrics"].get(f"validation_{m}")) for m in facts["metrics"]])
    if gate.get("candidate_score") is not None:
        difference = None if gate.get("champion_score") is None else gate["candidate_score"] - gate["champion_score"]
        lines += _table([f"{metric} (holdout)", "this version", champion, "difference"],
                        [("overall", gate["candidate_score"], gate.get("champion_score"), difference)])
    if gate.get("slices"):
        lines += [f"Per critical slice ({metric}; a slice may lose at most its tolerance):", ""]
        lines += _table(["column", "value", "rows", "this version", "champion", "tolerance"],
                        [(s["column"], s["value"], s["rows"], s["candidate"], s["champion"], s["tolerance"])
                         for s in gate["slices"]])
    return lines


def _gate_and_provenance(facts: dict) -> list[str]:
    gate, run, smoke = facts["gate"], facts["run"], facts["gate"]["smoke_test"]
    lines = ["## Gate", "", f"- Decision: {gate['decision']}",
             f"- Margin required on {gate['primary_metric']}: {gate['min_improvement']}",
             f"- Smoke test (fresh process, loaded from the registry): "
             f"{'passed' if smoke['passed'] else 'FAILED'}: {smoke['detail']}", ""]
    lines += ["## Environment", "", f"- Code: git commit `{run['git_commit']}`"
              + (" (with uncommitted changes)" if run["git_dirty"] else ""),
              f"- Runtime: {facts['runtime']}", "- Requirements: " + ", ".join(f"`{r}`" for r in facts["requirements"]),
              ""]
    lines += ["## Lineage", "", f"- MLflow run: {facts['links']['run']}",
              f"- Registered version: {facts['links']['version']}"]
    if facts["links"].get("dag_run"):
        lines.append(f"- Airflow DAG run: {facts['links']['dag_run']}")
    return lines


def render(facts: dict) -> str:
    """The card as Markdown, from the facts `publish` gathers (see tests for their shape).
    `inputs` is None for a run not made by loopline.training.train: the card says so."""
    gate = facts["gate"]
    lines = [f"# Model card: {facts['model_name']} v{facts['version']}", "",
             f"**Gate decision:** {'PROMOTED to champion' if gate['promoted'] else 'not promoted'}: "
             f"{gate['decision']}", "",
             "## Intended use", "", facts["intended_use"], ""]
    if facts.get("limitations"):
        lines += ["**Limitations:** " + facts["limitations"], ""]
    if facts["inputs"] is None:
        lines += ["## Training data", "", "Not recorded: this run was not made by `loopline.training.train`, so its "
                  "recipe, data and lineage are unknown.", ""]
    else:
        lines += _training(facts["inputs"], facts["feature_columns"])
    return "\n".join(lines + _metrics(facts) + _gate_and_provenance(facts)) + "\n"


def to_html(markdown: str, title: str) -> str:
    from markdown_it import MarkdownIt

    return HTML_PAGE.format(title=title, body=MarkdownIt("commonmark").enable("table").render(markdown))


def _links(run, name: str, version: int, dag_id: str | None, dag_run_id: str | None) -> dict[str, str]:
    from urllib.parse import quote

    tracking = os.environ.get("MLFLOW_TRACKING_URI", "").rstrip("/")
    links = {"run": f"{tracking}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}",
             "version": f"{tracking}/#/models/{name}/versions/{version}"}
    airflow = os.environ.get("AIRFLOW__API__BASE_URL", "").rstrip("/")
    if dag_id and dag_run_id:
        links["dag_run"] = f"{airflow}/dags/{dag_id}/runs/{quote(dag_run_id, safe='')}" if airflow \
            else f"{dag_id} / {dag_run_id}"
    return links


def _facts(client, spec: PipelineSpec, version: int, run_id: str, gate_report: dict, dag_id: str | None,
           dag_run_id: str | None) -> dict:
    """What the card says, gathered from the training run, the registry and the gate report."""
    import json

    import mlflow
    from mlflow.exceptions import MlflowException

    from loopline.core import metrics
    from loopline.core.run_artifacts import INPUTS_ARTIFACT

    run = client.get_run(run_id)
    try:
        inputs = json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/{INPUTS_ARTIFACT}"))
    except MlflowException:  # registered from a run loopline.training.train did not make
        inputs = None
    tags = run.data.tags
    return {
        "model_name": spec.model_name, "version": version, "inputs": inputs, "gate": gate_report,
        "intended_use": spec.model_card.intended_use or spec.description,
        "limitations": spec.model_card.limitations or None,
        "feature_columns": (Features.model_validate(inputs["recipe"]["features"]) if inputs else spec.features).columns,
        "metrics": metrics.names(spec.task.type), "runtime": tags.get("loopline.runtime", "unknown"),
        "requirements": mlflow.artifacts.load_text(f"models:/{spec.model_name}/{version}/requirements.txt").split(),
        "run": {"metrics": run.data.metrics, "git_commit": tags.get("mlflow.source.git.commit", "unknown"),
                "git_dirty": tags.get("loopline.git_dirty") == "true"},
        "links": _links(run, spec.model_name, version, dag_id, dag_run_id),
    }


def _logged_model_id(client, name: str, version: int) -> str:
    """The MLflow 3 logged model behind a version (the registry returns it as the source
    `models:/<model id>`; `ModelVersion.model_id` is not always filled in)."""
    found = client.get_model_version(name, str(version))
    model_id = found.model_id or found.source.removeprefix("models:/")
    if "/" in model_id or ":" in model_id:
        raise ValueError(f"{name} v{version} was registered from {found.source}, not from a logged model: "
                         "register the `models:/<model id>` URI that log_model returns")
    return model_id


def publish(client, spec: PipelineSpec, version: int, run_id: str, gate_report: dict,
            dag_id: str | None = None, dag_run_id: str | None = None) -> str:
    """Write the card of `version` (trained by `run_id`, judged in `gate_report`) into the
    model's own artifacts (`models:/<name>/<version>/model_card/`) and its first lines into
    the version's description; return the Markdown's URI."""
    import tempfile
    from pathlib import Path

    markdown = render(_facts(client, spec, version, run_id, gate_report, dag_id, dag_run_id))
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / Path(MARKDOWN).name).write_text(markdown)
        (Path(tmp) / Path(HTML).name).write_text(to_html(markdown, f"{spec.model_name} v{version}"))
        client.log_model_artifacts(_logged_model_id(client, spec.model_name, version), tmp, artifact_path=CARD_DIR)
    summary = "\n".join(markdown.splitlines()[:3])
    card_uri = f"models:/{spec.model_name}/{version}/{MARKDOWN}"
    client.update_model_version(spec.model_name, str(version),
                                description=f"{summary}\n\nFull model card: `{card_uri}` (HTML: `{HTML}` beside it).")
    return card_uri
