"""Product code names no pipeline: no pipeline's name, source, schema, field, dataset, topic,
suite or default is written as a string in include/loopline/ or plugins/ (it must come from
the spec). The names are read from every spec in include/pipelines/."""
import re
from pathlib import Path

import pytest

from loopline.spec import PIPELINES_DIR, load_spec

REPO = Path(__file__).resolve().parents[2]
PRODUCT = [*sorted((REPO / "include" / "loopline").rglob("*.py")), *sorted((REPO / "plugins").rglob("*.py"))]


def pipeline_names() -> set[str]:
    names = set()
    for path in PIPELINES_DIR.glob("*.yaml"):
        spec = load_spec(path.stem)
        names |= {spec.name, spec.predictions_topic, spec.target, *spec.sources, *spec.schemas, *spec.storage,
                  *spec.topics, *(c.suite for c in spec.contracts.values()), *spec.features.columns}
        names |= {field for schema in spec.schemas.values() for field in schema.fields}
    return names


@pytest.mark.parametrize("path", PRODUCT, ids=lambda p: str(p.relative_to(REPO)))
def test_product_code_writes_no_pipeline_name_as_a_string(path):
    text = path.read_text()
    found = sorted(name for name in pipeline_names() if re.search(rf"""["']{re.escape(name)}["'\[.:]""", text))
    assert found == [], f"{path.name} names {found}: take them from the spec instead"


def test_the_check_knows_the_demo_pipelines_names():
    assert {"card_fraud", "bike_demand", "transaction_id", "bronze_events", "card_payments", "hour_id",
            "cnt"} <= pipeline_names()
