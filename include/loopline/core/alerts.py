"""Tell people something needs them (a stopped line, an automatic rollback): pluggable
alert channels named in the pipeline spec.

    log      an ERROR line in the task log (always available)
    webhook  POST the alert as JSON to the URL in the channel's `url_env` variable
             (Slack/Teams/Mattermost incoming webhooks accept the `text` field)
    email    a plain-text mail to the recipients in `to_env`, through LOOPLINE_SMTP_HOST
             (port LOOPLINE_SMTP_PORT, default 25; sender LOOPLINE_SMTP_FROM; optional
             LOOPLINE_SMTP_USER / LOOPLINE_SMTP_PASSWORD with STARTTLS)

Delivery problems are reported, never raised: a broken webhook must not hide the failure
it was meant to announce.
"""
from __future__ import annotations

import json
import logging
import os
import smtplib
import urllib.request
from dataclasses import asdict, dataclass
from email.message import EmailMessage

from loopline.core.spec import AlertChannel

log = logging.getLogger("loopline.core.alerts")
TIMEOUT_S = 10


@dataclass(frozen=True)
class Alert:
    pipeline: str
    subject: str  # what happened, in a few words: "line stopped, contract failed on bronze_events"
    logical_date: str
    run_id: str
    summary: str  # what failed, with the numbers
    report_url: str | None

    @property
    def title(self) -> str:
        return f"[loopline] {self.pipeline}: {self.subject} ({self.logical_date})"

    @property
    def text(self) -> str:
        return f"{self.title}\n{self.summary}\nrun: {self.run_id}\nreport: {self.report_url or 'not available'}"


def _webhook(url: str, alert: Alert) -> None:
    body = json.dumps({"text": alert.text, **asdict(alert)}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        response.read()


def _email(recipients: str, alert: Alert) -> None:
    message = EmailMessage()
    message["Subject"], message["To"] = alert.title, recipients
    message["From"] = os.environ.get("LOOPLINE_SMTP_FROM", "loopline@localhost")
    message.set_content(alert.text)
    host, port = os.environ.get("LOOPLINE_SMTP_HOST", "localhost"), int(os.environ.get("LOOPLINE_SMTP_PORT", "25"))
    with smtplib.SMTP(host, port, timeout=TIMEOUT_S) as smtp:
        if os.environ.get("LOOPLINE_SMTP_USER"):
            smtp.starttls()
            smtp.login(os.environ["LOOPLINE_SMTP_USER"], os.environ.get("LOOPLINE_SMTP_PASSWORD", ""))
        smtp.send_message(message)


def notify(channels: list[AlertChannel], alert: Alert) -> list[str]:
    """Send `alert` on every active channel; return one line per channel saying what happened."""
    outcomes = []
    for channel in channels:
        if channel.channel == "log":
            log.error(alert.text)
            outcomes.append("log: written")
            continue
        variable = channel.url_env or channel.to_env
        address = os.environ.get(variable)
        if not address:
            outcomes.append(f"{channel.channel}: inactive ({variable} is not set)")
            continue
        try:
            (_webhook if channel.channel == "webhook" else _email)(address, alert)
            outcomes.append(f"{channel.channel}: sent")
        except (OSError, smtplib.SMTPException) as error:
            outcomes.append(f"{channel.channel}: FAILED to deliver ({error})")
    return outcomes
