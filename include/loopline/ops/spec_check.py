"""`loopline spec check <name>`: everything about a pipeline that can be checked without a
service: the spec itself, its feature module, and the contract suites it names (that they
parse, and that every column a rule names exists in the dataset the suite guards)."""
from __future__ import annotations

from loopline.contracts.rules import SuiteError, load_suite
from loopline.core.spec import SpecError, load_spec, pipelines_dir
from loopline.ingest.landing import BATCH_KEY, LINEAGE_COLUMNS
from loopline.models.features import FeatureBuilder


def check(name: str) -> list[str]:
    """Every problem found (empty: the pipeline is ready to run)."""
    try:
        spec = load_spec(name)
    except SpecError as error:
        return [str(error)]
    problems = []
    try:
        FeatureBuilder.for_spec(spec.features, pipelines_dir())
    except (OSError, AttributeError, SyntaxError, ImportError) as error:
        problems.append(f"features.code: {error}")
    for dataset, contract in spec.contracts.items():
        try:
            suite = load_suite(contract.suite)
        except SuiteError as error:
            problems.append(f"contracts.{dataset}.suite: {error}")
            continue
        source = spec.source_of(dataset)
        columns = {*source.schema.fields, *LINEAGE_COLUMNS, BATCH_KEY}  # ingest adds these
        unordered = [c for c in contract.exact_duplicates.first_by if c not in columns]
        if unordered:
            problems.append(f"contracts.{dataset}.exact_duplicates.first_by: {unordered} are not columns of {dataset} "
                            f"({sorted(columns)})")
        unknown = sorted({r.column for r in suite.rules if r.column and r.column not in columns})
        if unknown:
            problems.append(f"contracts.{dataset}.suite: {contract.suite} has rules on {unknown}, which are not "
                            f"columns of {dataset} ({sorted(columns)})")
    return problems
