"""How GX's exception reports become a rule's error (pure: no Spark)."""
from loopline.contracts.gx_validation import evaluation_error


def test_no_exception_is_no_error():
    assert evaluation_error(None) is None
    assert evaluation_error({}) is None
    assert evaluation_error({"raised_exception": False, "exception_message": None}) is None


def test_an_expectations_own_exception_is_read_flat():
    assert evaluation_error({"raised_exception": True, "exception_message": "bad regex"}) == "bad regex"


def test_failed_metrics_are_read_per_metric_once_per_message():
    missing = {"raised_exception": True, "exception_message": 'The column "channel" does not exist.',
               "exception_traceback": "..."}
    info = {"MetricConfigurationID(column_values.nonnull.condition)": missing,
            "MetricConfigurationID(column_values.in_set.condition)": missing,
            "MetricConfigurationID(column.max)": {"raised_exception": True, "exception_message": "timeout"}}
    assert evaluation_error(info) == 'The column "channel" does not exist.; timeout'
