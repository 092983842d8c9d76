from datetime import date

from loopline.monitoring.report import format_summary


def test_summary_shows_counts_contract_drift_and_gate_decisions():
    days = [
        {"logical_date": date(2026, 11, 1), "events_in": 3006, "events_accepted": 3000, "events_quarantined": 6,
         "labels": None, "contract_ok": True, "contract_rejected": 4, "contract_failed": 0, "predictions": 0,
         "scored_by": None, "max_psi": None, "drifted_features": None, "retrain_requested": None},
        {"logical_date": date(2026, 11, 2), "events_in": 40, "events_accepted": 40, "events_quarantined": 0,
         "labels": 10, "contract_ok": False, "contract_rejected": 0, "contract_failed": 2, "predictions": 0,
         "scored_by": None, "max_psi": None, "drifted_features": None, "retrain_requested": None},
        {"logical_date": date(2026, 11, 3), "events_in": 3006, "events_accepted": 3000, "events_quarantined": 6,
         "labels": 2900, "contract_ok": True, "contract_rejected": 3, "contract_failed": 0, "predictions": 3000,
         "scored_by": 4, "max_psi": 0.91, "drifted_features": ["amount"], "retrain_requested": True},
    ]
    trainings = [{"logical_date": date(2026, 11, 3), "dag_id": "p_nightly", "model_version": 5,
                  "primary_metric": "roc_auc", "candidate_score": 0.71, "champion_version": 4,
                  "champion_score": 0.72, "promoted": False, "decision": "does not beat champion"}]
    checks = [{"logical_date": date(2026, 11, 3), "champion_version": 4, "previous_version": 3, "labelled_rows": 2100,
               "metric": "roc_auc", "champion_score": 0.61, "previous_score": 0.70, "rolled_back": True,
               "decision": "rolled back v4 -> v3"}]
    lines = format_summary(days, trainings, checks).splitlines()
    assert lines[2].split()[:7] == ["2026-11-01", "3006", "3000", "6", "-", "pass", "4"]
    assert "FAIL(2)" in lines[3]
    assert lines[4].split()[-6:] == ["v4", "0.910", "amount", "->", "retraining", "requested"]
    promotion = lines.index("Training and promotion (champion/challenger gate on the candidate's holdout):") + 1
    assert "v5" in lines[promotion] and "vs champion v4 0.7200" in lines[promotion] and "not promoted" in lines[promotion]
    assert lines[-1].split() == ["2026-11-03", "v4", "roc_auc=0.6100", "vs", "v3", "0.7000", "on", "2100", "rows:",
                                 "ROLLED", "BACK"]


def test_a_candidate_that_failed_its_smoke_test_has_no_scores_to_show():
    trainings = [{"logical_date": date(2011, 5, 31), "dag_id": "p_retrain", "model_version": 9,
                  "primary_metric": "rmse", "candidate_score": float("nan"), "champion_version": 8,
                  "champion_score": None, "promoted": False, "decision": "smoke test failed: 1844.1 ms per 1,000 rows"}]
    [line] = [line for line in format_summary([], trainings).splitlines() if "v9" in line]
    assert "rmse=nan vs champion v8 -" in line and "not promoted: smoke test failed" in line


def test_summary_says_why_no_feedback_was_judged_yet():
    checks = [{"logical_date": date(2026, 11, 3), "champion_score": None,
               "decision": "not judged yet: 400 labelled predictions of v2, need 1000 with both classes"}]
    assert format_summary([], [], checks).splitlines()[-1] == (
        "  nothing judged yet (not judged yet: 400 labelled predictions of v2, need 1000 with both classes)")


def test_a_monthly_pipeline_sums_its_days_per_month_and_counts_each_contract_once():
    from loopline.monitoring.report import by_interval

    day = {"events_in": 24, "events_accepted": 24, "events_quarantined": 0, "labels": 22, "contract_ok": True,
           "contract_rejected": 1, "contract_failed": 0, "predictions": 24, "scored_by": 1, "max_psi": 0.1,
           "drifted_features": [], "retrain_requested": False}
    days = [{**day, "logical_date": date(2011, 1, d)} for d in (30, 31)]
    days += [{**day, "logical_date": date(2011, 2, 1), "scored_by": 2, "max_psi": 0.4, "drifted_features": ["temp"],
              "retrain_requested": True}]
    january, february = by_interval(days, "0 0 1 * *")
    assert january["logical_date"] == "2011-01-01..2011-01-31" and january["events_in"] == 48
    assert january["contract_rejected"] == 1 and january["retrain_requested"] is False
    assert (february["scored_by"], february["max_psi"], february["drifted_features"]) == (2, 0.4, ["temp"])
    assert format_summary([january, february], []).splitlines()[2].startswith("2011-01-01..2011-01-31 ")
