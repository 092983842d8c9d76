"""A registered version scores with the feature code it was trained with, on the real registry:
the pipeline's feature module changes after registration, and the version's predictions do not."""
from __future__ import annotations

import shutil
import uuid
from datetime import date, timedelta

import numpy as np
import pytest

from lifecycle_data import labelled, write_labelled_days
from loopline.core.pipeline import Pipeline
from loopline.core.spec import pipelines_dir
from loopline.models.features import FeatureBuilder
from loopline.models.store import load_version, register_version
from loopline.training.train import Recipe, train

DAYS = [date(2026, 8, 1) + timedelta(days=i) for i in range(4)]


@pytest.fixture(scope="module")
def registered(make_pipeline):
    """A card_fraud copy with its own copy of the feature module, trained and registered."""
    module = f"it_features_{uuid.uuid4().hex[:8]}"
    shutil.copy(pipelines_dir() / "card_fraud_features.py", pipelines_dir() / f"{module}.py")
    name = make_pipeline(features={"code": {"module": module, "function": "derive",
                                            "reads": ["event_time", "amount", "customer_avg_amount_30d", "country"],
                                            "adds": ["hour", "amount_to_avg_ratio", "is_foreign"]}})
    p = Pipeline.load(name)
    rows = labelled(DAYS, per_day=1500)
    write_labelled_days(p, rows)
    result = train(p.spec, p.lake, p.settings.db_url, DAYS[-1] + timedelta(days=1), "test_feature_code")
    version = register_version(p.settings.db_url, p.spec.name, result.model_uri, p.spec.model_name)
    return p, module, version, rows.head(500), Recipe.from_spec(p.spec).fingerprint()


def test_a_changed_feature_module_does_not_change_a_registered_version(registered):
    p, module, version, rows, fingerprint = registered
    before = load_version(p.settings.db_url, p.spec.model_name, version).score(rows)
    path = pipelines_dir() / f"{module}.py"
    path.write_text(path.read_text().replace('HOME_COUNTRY = "DE"', 'HOME_COUNTRY = "FR"'))  # a change that matters
    changed = FeatureBuilder.for_spec(p.spec.features, pipelines_dir()).build(rows)
    logged = load_version(p.settings.db_url, p.spec.model_name, version)
    assert not np.array_equal(changed["is_foreign"].to_numpy(), logged.builder.build(rows)["is_foreign"].to_numpy())
    assert np.array_equal(logged.score(rows), before)  # the version scores with its own code
    assert Recipe.from_spec(p.spec).fingerprint() != fingerprint  # and training again is a new recipe
