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


def test_gx_imported_in_a_task_logs_its_warnings_without_its_registration_noise():
    """A fresh interpreter with a task's root logger at INFO: once Loopline's GX module is
    loaded, importing GX (as `validate_frame` does first) and building a context log none of
    GX's two hundred "Skipping registering function" lines, while a GX warning still shows."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    include = Path(__file__).resolve().parents[2] / "include"
    script = """
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stdout)
import loopline.contracts.gx_validation  # lowers GX's log level as it loads
import great_expectations as gx
gx.get_context(mode="ephemeral")
logging.getLogger("great_expectations.checkpoint").warning("a GX warning")
"""
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(include)})
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "a GX warning" in ran.stdout
    assert "Skipping registering function" not in ran.stdout + ran.stderr
