"""Outgoing e-mail: one transport over SMTP (aiosmtplib), configured by URL; or printed, in development.

`SAFESHARE_SMTP_URL` (or `smtp_url` in safeshare.toml): `smtp://[user:pass@]host:port[?starttls=1]` for a relay
on port 25/587 (STARTTLS when asked), `smtps://…` for implicit TLS (465). Messages never carry share content,
justifications or codes in their headers; the body of a code message carries the code, nothing else secret.
"""

from __future__ import annotations

import logging
import sys
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Protocol

import aiosmtplib

from .config import Settings

log = logging.getLogger("safeshare.mail")

#: Seconds to wait for the relay before giving up on one message.
SMTP_TIMEOUT = 30.0
DEV_MAIL_MARK = "--- SafeShare dev mail (not sent) ---"


class MailError(Exception):
    """The relay refused or could not be reached (the message is not quoted)."""


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    body: str


class Mailer(Protocol):
    async def send(self, mail: Mail) -> None: ...


@dataclass(frozen=True)
class SmtpConfig:
    hostname: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool
    start_tls: bool


def parse_smtp_url(url: str) -> SmtpConfig:
    """Refuses anything but smtp:// and smtps:// with a host; errors never quote the URL (it may hold a password)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("SMTP URL must be smtp://[user:pass@]host:port[?starttls=1] or smtps://…")
    query = urllib.parse.parse_qs(parts.query)
    unknown = set(query) - {"starttls"}
    if unknown:
        raise ValueError("SMTP URL: the only query parameter understood is starttls")
    try:
        port = parts.port or (465 if parts.scheme == "smtps" else 25)
    except ValueError:
        raise ValueError("SMTP URL: the port is not a number from 1 to 65535") from None
    return SmtpConfig(
        hostname=parts.hostname,
        port=port,
        username=urllib.parse.unquote(parts.username) if parts.username else None,
        password=urllib.parse.unquote(parts.password) if parts.password else None,
        use_tls=parts.scheme == "smtps",
        start_tls=query.get("starttls", ["0"])[-1] in ("1", "true", "yes"),
    )


def build_message(mail: Mail, sender: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = mail.to
    msg["Subject"] = mail.subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain="safeshare.invalid")
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies to the gateway
    msg.set_content(mail.body)
    return msg


class SmtpMailer:
    def __init__(self, config: SmtpConfig, sender: str) -> None:
        self.config = config
        self.sender = sender

    async def send(self, mail: Mail) -> None:
        c = self.config
        try:
            await aiosmtplib.send(
                build_message(mail, self.sender),
                hostname=c.hostname,
                port=c.port,
                username=c.username,
                password=c.password,
                use_tls=c.use_tls,
                start_tls=c.start_tls if not c.use_tls else False,
                timeout=SMTP_TIMEOUT,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise MailError(type(exc).__name__) from None


class DevMailer:
    """`serve --dev` without a relay: print what would be sent, clearly marked, to standard output."""

    def __init__(self, sender: str) -> None:
        self.sender = sender

    async def send(self, mail: Mail) -> None:
        text = build_message(mail, self.sender).as_string()
        print(f"{DEV_MAIL_MARK}\n{text.rstrip()}\n{'-' * len(DEV_MAIL_MARK)}", file=sys.stdout, flush=True)


def mailer_from_settings(settings: Settings) -> Mailer | None:
    """The relay if one is configured; the printer in development; otherwise None (verify-mode shares refused)."""
    if settings.smtp_url:
        return SmtpMailer(parse_smtp_url(settings.smtp_url), settings.mail_from)
    if settings.dev_mail:
        return DevMailer(settings.mail_from)
    return None
