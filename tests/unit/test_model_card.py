"""Model cards render every section from the recorded facts, as Markdown and as HTML."""
from __future__ import annotations

from loopline.release.model_card import render, to_html

SPLIT = {"event_dates": ["2026-11-16", "2026-11-17"], "rows": 6000, "positives": 210, "data_hash": "a" * 64}
INPUTS = {
    "trained_until": "2026-11-19", "window_days": None, "data_hash": "f" * 64,
    "recipe": {"task": "binary", "model_type": "lightgbm", "params": {"num_leaves": 31}, "seed": 7, "target": "is_fraud",
               "features": {}},
    "splits": {"train": SPLIT, "validation": {**SPLIT, "event_dates": ["2026-11-18"], "rows": 3000},
               "holdout": {**SPLIT, "event_dates": ["2026-11-19"], "rows": 990}},
    "partitions": [{"dataset": "valid_events", "date": "2026-11-16", "rows": 3000, "uri": "file:///lake/x"}],
    "kafka_offsets": [{"dataset": "valid_events", "source": "card_payments", "partition": 1, "first": 17,
                       "last": 9120, "rows": 4000}],
    "contracts": [{"dataset": "bronze_events", "date": "2026-11-16", "success": True, "rows_in": 3006,
                   "rows_valid": 3000, "rows_quarantined": 6, "report_uri": "s3://b/report.html"}],
}
GATE = {"promoted": False, "decision": "critical slice degrades: country=DE", "primary_metric": "roc_auc",
        "candidate_score": 0.81, "champion_score": 0.79, "champion_version": 6, "min_improvement": 0.002,
        "slices": [{"column": "country", "value": "DE", "rows": 689, "candidate": 0.75, "champion": 0.82,
                    "tolerance": 0.05}],
        "smoke_test": {"passed": True, "detail": "994 rows scored, 2.0 ms per 1,000"}}
FACTS = {"model_name": "card_fraud", "version": 8, "inputs": INPUTS, "gate": GATE,
         "intended_use": "Ranks payments for review.", "limitations": "Labels arrive late.",
         "feature_columns": ["amount", "country"], "metrics": ("roc_auc",), "runtime": "Python 3.11",
         "requirements": ["lightgbm==4.7.0"],
         "run": {"metrics": {"roc_auc": 0.81, "validation_roc_auc": 0.78}, "git_commit": "abc123", "git_dirty": True},
         "links": {"run": "http://127.0.0.1:15000/#/runs/r1",
                   "version": "http://127.0.0.1:15000/#/models/card_fraud/versions/8",
                   "dag_run": "http://127.0.0.1:18080/dags/card_fraud_nightly/runs/x"}}


def test_a_card_has_every_section_with_the_recorded_facts():
    card = render(FACTS)
    for heading in ("Intended use", "Model", "Training data", "Metrics", "Gate", "Environment", "Lineage"):
        assert f"## {heading}" in card
    assert "**Gate decision:** not promoted: critical slice degrades: country=DE" in card
    assert "| train | 2026-11-16 .. 2026-11-17 (2 dates) | 6000 | 210 | aaaaaaaaaaaaaaaa |" in card
    assert "| holdout | 2026-11-19 | 990 |" in card
    assert "| valid_events | card_payments | 1 | 17 | 9120 | 4000 |" in card
    assert "[GX report](s3://b/report.html)" in card
    assert "| overall | 0.8100 | 0.7900 | 0.0200 |" in card
    assert "| country | DE | 689 | 0.7500 | 0.8200 | 0.0500 |" in card
    assert "git commit `abc123` (with uncommitted changes)" in card and "`lightgbm==4.7.0`" in card
    assert "http://127.0.0.1:18080/dags/card_fraud_nightly/runs/x" in card


def test_a_run_without_recorded_inputs_says_so():
    card = render({**FACTS, "inputs": None})
    assert "Not recorded: this run was not made by `loopline.training.train`" in card
    assert "## Metrics" in card and "## Model\n" not in card


def test_the_html_card_renders_the_tables():
    page = to_html(render(FACTS), "card_fraud v8")
    assert page.startswith("<!doctype html>") and "<title>card_fraud v8</title>" in page
    assert page.count("<table>") == 7 and "<td>country</td>" in page
