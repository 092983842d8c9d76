"""Product code names no pipeline: no pipeline's name, source, schema, field, dataset, topic,
suite, feature or default is written as a string in include/loopline/ or plugins/ (it must come
from the spec). The names are read from every spec in include/pipelines/; the product's own
vocabulary (the spec's keys, the datasets every spec places, built-in transforms, the
columns of a prediction, the names new-pipeline gives what it adds) is not a pipeline's name
even when a pipeline reuses the word."""
import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from loopline.core.spec import DEFAULTED_DATASETS, PIPELINES_DIR, REQUIRED_DATASETS, PipelineSpec, Transform, load_spec
from loopline.ops.onboarding import LABEL_TIME_FIELD, TIME_FEATURES
from loopline.scoring.score import PREDICTION_SCHEMA

REPO = Path(__file__).resolve().parents[2]
PRODUCT = [*sorted((REPO / "include" / "loopline").rglob("*.py")), *sorted((REPO / "plugins").rglob("*.py"))]


def spec_keys(model: type[BaseModel] = PipelineSpec, seen: set | None = None) -> set[str]:
    """Every key a spec document can have, at any depth."""
    from typing import get_args

    seen = seen if seen is not None else set()
    if model in seen:
        return set()
    seen.add(model)
    keys = set()
    for name, info in model.model_fields.items():
        keys.add(info.alias or name)
        pending = [info.annotation]
        while pending:
            annotation = pending.pop()
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                keys |= spec_keys(annotation, seen)
            pending += list(get_args(annotation))
    return keys


VOCABULARY = (spec_keys() | set(REQUIRED_DATASETS) | set(DEFAULTED_DATASETS) | set(Transform.model_fields)  # the spec's own words
              | {column.split()[0] for column in PREDICTION_SCHEMA.split(",")}  # a prediction's columns
              | {LABEL_TIME_FIELD, *TIME_FEATURES})  # what `loopline new-pipeline` names what it adds


def pipeline_names() -> set[str]:
    names = set()
    for path in PIPELINES_DIR.glob("*.yaml"):
        spec = load_spec(path.stem)
        names |= {spec.name, spec.predictions_topic, spec.target, *spec.sources, *spec.schemas, *spec.storage,
                  *spec.topics, *(c.suite for c in spec.contracts.values()), *spec.features.columns}
        names |= {field for schema in spec.schemas.values() for field in schema.fields}
    return names - VOCABULARY


@pytest.mark.parametrize("path", PRODUCT, ids=lambda p: str(p.relative_to(REPO)))
def test_product_code_writes_no_pipeline_name_as_a_string(path):
    text = path.read_text()
    found = sorted(name for name in pipeline_names() if re.search(rf"""["']{re.escape(name)}["'\[.:]""", text))
    assert found == [], f"{path.name} names {found}: take them from the spec instead"


def test_the_check_knows_the_demo_pipelines_names():
    assert {"card_fraud", "bike_demand", "transaction_id", "bronze_events", "valid_events", "card_payments",
            "is_fraud", "hour_id", "cnt", "bike_demand.hours", "card_payments_bronze"} <= pipeline_names()
