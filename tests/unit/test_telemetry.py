import socket

from loopline.core import telemetry


def test_metrics_go_out_as_dogstatsd_lines_with_their_pipeline(monkeypatch):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(5)
        monkeypatch.setenv(telemetry.ADDRESS_ENV, f"127.0.0.1:{receiver.getsockname()[1]}")
        telemetry.gauge("feature.psi", 0.25, pipeline="p", feature="a:b|c")
        telemetry.count("ingest.rows", 12, pipeline="p", outcome="accepted")
        lines = [receiver.recv(1024).decode() for _ in range(2)]
    assert lines == ["loopline.feature.psi:0.25|g|#pipeline:p,feature:a_b_c",
                     "loopline.ingest.rows:12|c|#pipeline:p,outcome:accepted"]


def test_without_an_address_nothing_is_sent_and_a_dead_one_raises_nothing(monkeypatch, caplog):
    monkeypatch.delenv(telemetry.ADDRESS_ENV, raising=False)
    telemetry.gauge("x", 1, pipeline="p")  # no address: a no-op
    assert caplog.records == []
    monkeypatch.setenv(telemetry.ADDRESS_ENV, "no-such-host.invalid:8125")
    telemetry.gauge("x", 1, pipeline="p")  # unresolvable: logged, not raised
    [warning] = caplog.records
    assert "metric not sent to no-such-host.invalid:8125" in warning.getMessage()
