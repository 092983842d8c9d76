"""Alert channels against real local endpoints: an HTTP server (tests/conftest.py) and an SMTP server."""
from __future__ import annotations

import email
import json
import email.policy
import socket
import threading
import warnings

import pytest

from loopline.core.alerts import Alert, notify
from loopline.core.spec import AlertChannel

ALERT = Alert("card_fraud", "line stopped, contract failed on bronze_events", "2026-11-20", "scheduled__x", "volume: observed 40",
              "http://127.0.0.1:18333/loopline/report.html")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_endpoint(monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import asyncore
        import smtpd

    received = []

    class Collect(smtpd.SMTPServer):
        def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
            received.append((rcpttos, data.decode()))

    port, sockets, running = free_port(), {}, threading.Event()
    server = Collect(("127.0.0.1", port), None, map=sockets)  # its own socket map: no test sees another's

    def serve() -> None:
        while running.is_set():
            asyncore.loop(timeout=0.05, count=1, map=sockets)

    running.set()
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    monkeypatch.setenv("LOOPLINE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("LOOPLINE_SMTP_PORT", str(port))
    yield received
    running.clear()
    thread.join()
    server.close()


def test_webhook_posts_the_alert_with_its_report_link(http_endpoint, monkeypatch):
    url, received = http_endpoint
    monkeypatch.setenv("HOOK", url)
    assert notify([AlertChannel(channel="webhook", url_env="HOOK")], ALERT) == ["webhook: sent"]
    [body] = received
    assert body["report_url"] == ALERT.report_url and "volume: observed 40" in body["text"]


def test_email_goes_to_every_recipient(smtp_endpoint, monkeypatch):
    monkeypatch.setenv("TO", "oncall@example.org,data@example.org")
    assert notify([AlertChannel(channel="email", to_env="TO")], ALERT) == ["email: sent"]
    [(recipients, raw)] = smtp_endpoint
    message = email.message_from_string(raw, policy=email.policy.default)
    assert recipients == ["oncall@example.org", "data@example.org"]
    assert message["Subject"] == ALERT.title and ALERT.report_url in message.get_content()


def test_unset_address_leaves_a_channel_inactive_and_failures_are_reported_not_raised(monkeypatch):
    monkeypatch.delenv("HOOK", raising=False)
    monkeypatch.setenv("DEAD", f"http://127.0.0.1:{free_port()}/hook")  # nothing listens there
    outcomes = notify([AlertChannel(channel="log"), AlertChannel(channel="webhook", url_env="HOOK"),
                       AlertChannel(channel="webhook", url_env="DEAD")], ALERT)
    assert outcomes[0] == "log: written"
    assert outcomes[1] == "webhook: inactive (HOOK is not set)"
    assert outcomes[2].startswith("webhook: FAILED to deliver")


@pytest.mark.parametrize("url", ["http://alerts.example.org/hook?token=s3cr3t", "ftp://127.0.0.1/hook?token=s3cr3t",
                                 "file:///etc/passwd?token=s3cr3t", "https:///no-host?token=s3cr3t", "s3cr3t"])
def test_a_webhook_must_be_https_and_its_value_is_never_echoed(url, monkeypatch):
    monkeypatch.setenv("HOOK", url)
    [outcome] = notify([AlertChannel(channel="webhook", url_env="HOOK")], ALERT)
    assert outcome.startswith("webhook: FAILED, HOOK is not an https URL") and "s3cr3t" not in outcome


@pytest.mark.parametrize("recipients", ["oncall", "on call@example.org", "a@example.org\r\nBcc: s3cr3t@x.org",
                                        "s3cr3t@nodot"])
def test_a_malformed_recipient_list_is_refused_without_echoing_it(recipients, smtp_endpoint, monkeypatch):
    monkeypatch.setenv("TO", recipients)
    [outcome] = notify([AlertChannel(channel="email", to_env="TO")], ALERT)
    assert outcome.startswith("email: FAILED, TO must be") and "s3cr3t" not in outcome
    assert smtp_endpoint == []


def test_credentials_are_never_sent_to_a_server_without_starttls(smtp_endpoint, monkeypatch):
    monkeypatch.setenv("TO", "oncall@example.org")
    monkeypatch.setenv("LOOPLINE_SMTP_USER", "loopline")
    monkeypatch.setenv("LOOPLINE_SMTP_PASSWORD", "s3cr3t")
    [outcome] = notify([AlertChannel(channel="email", to_env="TO")], ALERT)
    assert outcome.startswith("email: FAILED to deliver") and "STARTTLS" in outcome
    assert smtp_endpoint == []


def test_an_alert_never_carries_a_credential_the_process_holds(http_endpoint, smtp_endpoint, monkeypatch):
    url, posted = http_endpoint
    monkeypatch.setenv("LOOPLINE_DB_URL", "postgresql://loopline_app:db-Pa55word@127.0.0.1:15432/loopline")
    monkeypatch.setenv("LOOPLINE_KAFKA_INGEST_PASSWORD", "kafka-Pa55word")
    monkeypatch.setenv("HOOK_URL", url)
    monkeypatch.setenv("ALERT_TO", "ops@example.org")
    leaky = Alert("card_fraud", "ingest failed", "2026-11-20", "scheduled__x",
                  'connection to "postgresql://loopline_app:db-Pa55word@127.0.0.1:15432" refused; '
                  "SASL login with kafka-Pa55word failed", None)
    assert notify([AlertChannel(channel="webhook", url_env="HOOK_URL"),
                   AlertChannel(channel="email", to_env="ALERT_TO")], leaky) == ["webhook: sent", "email: sent"]
    [(_, raw)] = smtp_endpoint
    mail = email.message_from_string(raw, policy=email.policy.default)
    for sent in (json.dumps(posted[0]), mail["Subject"] + mail.get_content()):
        assert "Pa55word" not in sent and "loopline_app:***@127.0.0.1" in sent and "SASL login with *** failed" in sent
