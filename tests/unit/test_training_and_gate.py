from datetime import date

import pandas as pd
import pytest

from loopline.gate import decide
from loopline.db import jdbc_options
from loopline.training import fingerprint, recent, time_split


def frame(n=10):
    return pd.DataFrame({"transaction_id": [f"t{i}" for i in range(n)],
                         "event_time": pd.date_range("2026-11-01", periods=n, freq="D", tz="UTC")})


def test_time_split_keeps_the_most_recent_rows_for_validation():
    train, holdout = time_split(frame(), 0.3)
    assert len(train) == 7 and len(holdout) == 3
    assert train["event_time"].max() < holdout["event_time"].min()


def test_recent_window_keeps_the_last_days():
    assert len(recent(frame(), date(2026, 11, 10), 3)) == 3
    assert len(recent(frame(), date(2026, 11, 10), None)) == 10


def test_fingerprint_changes_with_the_rows():
    assert fingerprint(frame()) == fingerprint(frame())
    assert fingerprint(frame()) != fingerprint(frame(9))


def test_gate_promotes_first_model_and_only_clear_improvements():
    assert decide(0.70, None, 0.002)[0]
    assert decide(0.705, 0.70, 0.002)[0]
    assert not decide(0.701, 0.70, 0.002)[0]
    assert not decide(0.69, 0.70, 0.002)[0]


def test_jdbc_options_from_libpq_url():
    options = jdbc_options("postgresql://u:p%40ss@127.0.0.1:15432/loopline")
    assert options["url"] == "jdbc:postgresql://127.0.0.1:15432/loopline"
    assert options["user"] == "u"


@pytest.mark.parametrize("uri", ["runs:/abc123/model", "/tmp/model.txt", "s3://bucket/model", "file:///m",
                                 "mlflow-artifacts:/1/x/artifacts/model"])
def test_models_load_only_from_the_registry(uri):
    from loopline.registry import UnregisteredModelError, load_model

    with pytest.raises(UnregisteredModelError, match="only from the registry"):
        load_model(uri)


def test_a_failed_smoke_test_blocks_promotion_even_without_a_champion():
    from loopline.gate import SmokeResult

    promoted, reason = decide(0.9, None, 0.002, smoke=SmokeResult(False, "12 of 1000 predictions are NaN"))
    assert not promoted and reason == "smoke test failed: 12 of 1000 predictions are NaN"


def test_a_degraded_critical_slice_blocks_an_overall_improvement():
    import numpy as np

    from loopline.gate import slice_checks

    rng = np.random.default_rng(0)
    holdout = pd.DataFrame({"country": ["DE"] * 600 + ["BR"] * 600 + ["NG"] * 20})
    labels = rng.integers(0, 2, len(holdout))
    champion = np.where(labels == 1, 0.8, 0.2) + rng.normal(0, 0.05, len(holdout))   # good everywhere
    candidate = champion.copy()
    candidate[600:1200] = rng.random(600)                                              # random on BR
    accuracy = lambda p, y: float(((p > 0.5) == y).mean())  # noqa: E731
    checks = {c.value: c for c in slice_checks(holdout, labels, candidate, champion, {"country": 0.05}, 100, accuracy)}
    assert checks["DE"].passed and not checks["BR"].passed
    assert not checks["NG"].judged and checks["NG"].passed  # 20 rows: reported, not judged
    promoted, reason = decide(0.80, 0.70, 0.002, list(checks.values()))
    assert not promoted and reason.startswith("critical slice degrades: country=BR")
    assert decide(0.80, 0.70, 0.002, [checks["DE"], checks["NG"]])[0]
