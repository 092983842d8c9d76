import numpy as np
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
