"""Tell people something needs them (a stopped line, an automatic rollback, a failed task, a
missed deadline): pluggable alert channels named in the pipeline spec.

    log      an ERROR line in the task log (always available)
    webhook  POST the alert as JSON to the URL in the channel's `url_env` variable
             (Slack/Teams/Mattermost incoming webhooks accept the `text` field)
    email    a plain-text mail to the recipients in `to_env`, through LOOPLINE_SMTP_HOST
             (port LOOPLINE_SMTP_PORT, default 25; sender LOOPLINE_SMTP_FROM; optional
             LOOPLINE_SMTP_USER / LOOPLINE_SMTP_PASSWORD, sent only after STARTTLS with a
             verified certificate)

A webhook must be https (plain http only to this machine), and an address that is not
well formed is refused without echoing it: webhook URLs carry tokens. Delivery problems
are reported, never raised: a broken webhook must not hide the failure it was meant to announce.
Every alert is redacted first: no credential the process holds leaves in one.
"""
from __future__ import annotations

import json
import logging
import os
import smtplib
import ssl
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from email.utils import getaddresses

from loopline.core.config import redact
from loopline.core.spec import AlertChannel

log = logging.getLogger("loopline.core.alerts")
TIMEOUT_S = 10
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


class AlertAddressError(ValueError):
    """A channel's address is not usable; the message names the variable, never its value."""


def checked_webhook_url(variable: str, url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and parts.hostname or parts.scheme == "http" and parts.hostname in LOOPBACK:
        return url
    raise AlertAddressError(f"{variable} is not an https URL (plain http is allowed only to this machine); "
                            "its value is not shown because webhook URLs carry tokens")


def checked_recipients(variable: str, recipients: str) -> list[str]:
    addresses = [address for _, address in getaddresses([recipients])]
    if not addresses or any(not _well_formed(a) for a in addresses) or "\n" in recipients or "\r" in recipients:
        raise AlertAddressError(f"{variable} must be a comma-separated list of mail addresses (name@domain); "
                                "its value is not shown")
    return addresses


@dataclass(frozen=True)
class Alert:
    pipeline: str
    subject: str  # what happened, in a few words: "line stopped, contract failed on bronze_events"
    logical_date: str
    run_id: str
    summary: str  # what failed, with the numbers
    report_url: str | None
    log_url: str | None = None  # the failed task's log (or the run) in the Airflow UI

    @property
    def title(self) -> str:
        return f"[loopline] {self.pipeline}: {self.subject} ({self.logical_date})"

    @property
    def text(self) -> str:
        log = f"\nlog: {self.log_url}" if self.log_url else ""
        return f"{self.title}\n{self.summary}\nrun: {self.run_id}\nreport: {self.report_url or 'not available'}{log}"

    def redacted(self) -> "Alert":
        """The alert with any credential this process holds blanked out: a summary quotes an
        error message, and an error message can quote a connection string."""
        return Alert(**{k: redact(v) if isinstance(v, str) else v for k, v in asdict(self).items()})


def _webhook(url: str, alert: Alert) -> None:
    body = json.dumps({"text": alert.text, **asdict(alert)}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        response.read()


def _well_formed(address: str) -> bool:
    local, at, domain = address.partition("@")
    return bool(local and at and "." in domain and not any(c.isspace() for c in address))


def _email(recipients: list[str], alert: Alert) -> None:
    message = EmailMessage()
    message["Subject"], message["To"] = alert.title, ", ".join(recipients)
    message["From"] = os.environ.get("LOOPLINE_SMTP_FROM", "loopline@localhost")
    message.set_content(alert.text)
    host, port = os.environ.get("LOOPLINE_SMTP_HOST", "localhost"), int(os.environ.get("LOOPLINE_SMTP_PORT", "25"))
    with smtplib.SMTP(host, port, timeout=TIMEOUT_S) as smtp:
        if os.environ.get("LOOPLINE_SMTP_USER"):
            smtp.starttls(context=ssl.create_default_context())  # verifies the certificate and host name
            smtp.login(os.environ["LOOPLINE_SMTP_USER"], os.environ.get("LOOPLINE_SMTP_PASSWORD", ""))
        smtp.send_message(message)


def notify(channels: list[AlertChannel], alert: Alert, db_url: str | None = None) -> list[str]:
    """Send `alert` on every active channel; return one line per channel saying what happened.
    With `db_url`, the alert and those lines are also kept in loopline.alerts (the loop view
    shows each pipeline's last alert)."""
    outcomes, alert = [], alert.redacted()
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
            if channel.channel == "webhook":
                _webhook(checked_webhook_url(variable, address), alert)
            else:
                _email(checked_recipients(variable, address), alert)
            outcomes.append(f"{channel.channel}: sent")
        except AlertAddressError as error:
            outcomes.append(f"{channel.channel}: FAILED, {error}")
        except (OSError, smtplib.SMTPException) as error:
            outcomes.append(f"{channel.channel}: FAILED to deliver ({error})")
    if db_url:
        outcomes.append(_record(db_url, alert, outcomes))
    return outcomes


def _record(db_url: str, alert: Alert, outcomes: list[str]) -> str:
    """Keep the alert in PostgreSQL; a database that is down is reported, never raised (the
    alert may be announcing exactly that)."""
    import psycopg2

    from loopline.core import db

    try:
        with db.connect(db_url) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO loopline.alerts (pipeline, subject, logical_date, run_id, summary, channels) "
                        "VALUES (%s, %s, %s, %s, %s, %s)", (alert.pipeline, alert.subject, alert.logical_date,
                                                            alert.run_id, alert.summary, db.as_json(outcomes)))
        return "record: kept in loopline.alerts"
    except psycopg2.Error as error:
        return f"record: FAILED ({str(error).strip()})"
