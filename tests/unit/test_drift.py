import numpy as np
import pytest
import pandas as pd

from loopline.core.drift import drift_scores, profile, psi


def test_psi_is_zero_for_identical_and_large_for_shifted_distributions():
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert psi([0.9, 0.1], [0.1, 0.9]) > 1.0


def test_drift_scores_flag_only_the_shifted_column():
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"amount": rng.lognormal(3, 0.7, 5000),
                              "channel": pd.Categorical(rng.choice(["pos", "ecom"], 5000, p=[0.7, 0.3]))})
    current = pd.DataFrame({"amount": rng.lognormal(3, 0.7, 5000) * 1.8,
                            "channel": pd.Categorical(rng.choice(["pos", "ecom"], 5000, p=[0.7, 0.3]))})
    scores = drift_scores(profile(reference, ["amount", "channel"]), current)
    assert scores["amount"] > 0.2
    assert scores["channel"] < 0.05


def test_new_category_counts_as_drift():
    reference = profile(pd.DataFrame({"c": ["a"] * 90 + ["b"] * 10}), ["c"])
    assert drift_scores(reference, pd.DataFrame({"c": ["a"] * 50 + ["z"] * 50}))["c"] > 0.2


def test_compare_bins_both_sides_on_the_reference_edges():
    from loopline.core.drift import compare

    reference = profile(pd.DataFrame({"x": np.arange(100, dtype=float)}), ["x"])
    [comparison] = compare(reference, pd.DataFrame({"x": np.full(10, 95.0)})).values()
    assert comparison.kind == "numeric" and len(comparison.bins) == len(comparison.reference) == len(comparison.current)
    assert comparison.bins[0].startswith("< ") and comparison.bins[-1].startswith("≥ ")
    assert sum(comparison.reference) == pytest.approx(1) and comparison.current[-1] == 1.0
    assert comparison.psi == pytest.approx(psi(comparison.reference, comparison.current))


def drift_result(scores: dict[str, float], threshold: float = 0.2):
    from datetime import date

    from loopline.core.drift import Comparison
    from loopline.core.interval import Interval
    from loopline.monitoring.monitor import DriftResult

    features = {f: Comparison("categorical", ["a", "b"], [0.5, 0.5], [0.5, 0.5], value) for f, value in scores.items()}
    return DriftResult(Interval.of_day(date(2026, 3, 5)), 3, 100, features, threshold, None, None, None)


def test_the_drift_report_names_the_drifted_features_first_and_only_them():
    from loopline.monitoring.drift_report import render

    from dataclasses import replace

    from loopline.monitoring.retraining import Reason

    drifted = render("p", replace(drift_result({"amount": 0.41, "hour": 0.02}),
                                  reasons=[Reason("feature_drift", "PSI above 0.2 for amount")]))
    assert '<b id="drifted-features">amount</b>' in drifted
    assert '<b id="retrain-reasons">feature_drift</b>' in drifted and "PSI above 0.2 for amount" in drifted
    calm = render("p", drift_result({"amount": 0.05, "hour": 0.02}))
    assert 'id="drifted-features"' not in calm and "No feature drifted (highest PSI 0.050" in calm
    assert "No retraining trigger fired" in calm
    assert "<script" not in drifted + calm  # a stored page that runs nothing
