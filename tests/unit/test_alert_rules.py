"""Loopline's Prometheus alert rules, checked and unit-tested by Prometheus's own promtool
(installed with Debian's `prometheus` package by `make setup`)."""
import subprocess
from pathlib import Path

PROMETHEUS = Path(__file__).resolve().parents[2] / "infra" / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120)


def test_the_alert_rules_are_valid_and_pass_their_promtool_tests():
    checked = promtool("check", "rules", "loopline_rules.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", "loopline_rules_test.yml")
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def test_the_statsd_mapping_is_valid():
    from loopline.core.spark import tools_dir

    exporter = tools_dir() / "bin" / "statsd_exporter"
    checked = subprocess.run([str(exporter), "--check-config", f"--statsd.mapping-config={PROMETHEUS / 'statsd_mapping.yml'}"],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
