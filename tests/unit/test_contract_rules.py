"""Suite files as Loopline reads them: names, severities, and what may be row-level."""
import pytest

from loopline.contracts.rules import ROW_RULE_TYPES, SuiteError, load_suite, parse_suite
from loopline.core.spec import load_spec


def suite(*expectations):
    return {"name": "s", "expectations": list(expectations)}


def rule(kind="expect_column_values_to_not_be_null", severity="row", **kwargs):
    return {"type": kind, "kwargs": {"column": "a", **kwargs}, "meta": {"severity": severity}}


@pytest.mark.parametrize("dataset", sorted(load_spec("card_fraud").contracts))
def test_every_reviewed_suite_parses_with_both_severities(dataset):
    parsed = load_suite(load_spec("card_fraud").contracts[dataset].suite)
    assert {r.severity for r in parsed.rules} == {"row", "batch"}
    assert all(r.type in ROW_RULE_TYPES for r in parsed.row_rules)
    assert len({r.name for r in parsed.rules}) == len(parsed.rules)


def test_names_default_to_column_and_rule_and_reach_gx_meta():
    parsed = parse_suite(suite(rule(), rule("expect_table_row_count_to_be_between", "batch", min_value=1)))
    assert [r.name for r in parsed.rules] == ["a:values_to_not_be_null", "a:row_count_to_be_between"]
    assert [e["meta"]["name"] for e in parsed.raw["expectations"]] == [r.name for r in parsed.rules]


def test_table_rules_are_named_table():
    parsed = parse_suite(suite({"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1},
                                "meta": {"severity": "batch"}}))
    assert parsed.rules[0].name == "table:row_count_to_be_between"


@pytest.mark.parametrize("expectation, message", [
    ({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}}, "meta.severity"),
    (rule(severity="sometimes"), "meta.severity"),
    (rule("expect_column_mean_to_be_between", min_value=1), "cannot be row-level"),
    (rule(mostly=0.9), "mostly"),
    (rule("expect_column_values_to_be_between", min_value={"$PARAMETER": "partition_start"}), "literal values"),
])
def test_rules_loopline_cannot_enforce_are_refused_with_the_reason(expectation, message):
    with pytest.raises(SuiteError, match=message):
        parse_suite(suite(expectation))


def test_duplicate_rule_names_are_refused():
    with pytest.raises(SuiteError, match="used twice"):
        parse_suite(suite(rule(), rule()))


def test_a_missing_suite_file_says_how_to_start_one():
    with pytest.raises(SuiteError, match="contract draft"):
        load_suite("no_such_suite")
