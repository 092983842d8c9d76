"""Model files are read without running code: LightGBM's text format, scikit-learn through
skops with Loopline's own trusted-type list, and a pickle refused."""
from __future__ import annotations

import datetime

import numpy as np
import pandas as pd
import pytest

from loopline.models.types import LightGBM, SklearnLogistic, UnsafeModelFormat


@pytest.fixture
def rows():
    generator = np.random.default_rng(7)
    frame = pd.DataFrame({"amount": generator.random(80), "kind": pd.Categorical(generator.choice(["a", "b"], 80))})
    return frame, (frame.amount > 0.5).astype(int)


def test_a_scikit_learn_baseline_round_trips_through_skops(tmp_path, rows):
    frame, target = rows
    kind = SklearnLogistic()
    model = kind.fit(frame, target, frame, target, {}, 1, "binary")
    import mlflow.sklearn

    from loopline.models.types import SKOPS_TRUSTED_TYPES

    mlflow.sklearn.save_model(model, tmp_path / "m", serialization_format="skops",
                              skops_trusted_types=SKOPS_TRUSTED_TYPES)
    assert (tmp_path / "m" / "model.skops").exists()
    loaded = kind.load_model(tmp_path / "m")
    assert np.allclose(kind.predict(loaded, frame), kind.predict(model, frame))


def test_a_pickled_scikit_learn_model_is_refused(tmp_path, rows):
    import mlflow.sklearn

    frame, target = rows
    kind = SklearnLogistic()
    mlflow.sklearn.save_model(kind.fit(frame, target, frame, target, {}, 1, "binary"), tmp_path / "m",
                              serialization_format="cloudpickle")
    with pytest.raises(UnsafeModelFormat, match="runs code"):
        kind.load_model(tmp_path / "m")


def test_a_skops_file_with_an_untrusted_type_is_refused_even_if_its_mlmodel_trusts_it(tmp_path, rows):
    import mlflow.sklearn
    from skops.io.exceptions import UntrustedTypesFoundException

    frame, target = rows
    kind = SklearnLogistic()
    model = kind.fit(frame, target, frame, target, {}, 1, "binary")
    model.smuggled = datetime.date(2020, 1, 1)  # stands for any type outside the list
    mlflow.sklearn.save_model(model, tmp_path / "m", serialization_format="skops",
                              skops_trusted_types=["numpy.dtype", "datetime.date"])
    with pytest.raises(UntrustedTypesFoundException, match="datetime.date"):
        kind.load_model(tmp_path / "m")


def test_lightgbm_loads_from_its_text_format(tmp_path, rows):
    import mlflow.lightgbm

    frame, target = rows
    kind = LightGBM()
    model = kind.fit(frame, target, frame, target, {"num_boost_round": 5, "verbose": -1}, 1, "binary")
    mlflow.lightgbm.save_model(model, tmp_path / "m")
    assert (tmp_path / "m" / "model.lgb").read_text().startswith("tree")
    assert np.allclose(kind.predict(kind.load_model(tmp_path / "m"), frame), kind.predict(model, frame))
