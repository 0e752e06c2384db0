"""E-mail over SMTP (standard library), as a `bot.delivery.mailer.Mailer`.

Configured by SMTP_HOST, SMTP_PORT (587), SMTP_SECURITY (`starttls`, `ssl` or `none`),
SMTP_USERNAME, SMTP_PASSWORD, SMTP_FROM. Without SMTP_HOST, `default_mailer` gives the outbox.
"""

from __future__ import annotations

import os
import smtplib
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid

from bot.delivery.mailer import Mailer, OutboxMailer
from bot.delivery.sending import Kind, SendError


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 587
    security: str = "starttls"
    username: str | None = None
    password: str | None = None
    sender: str = "no-reply@dichvucong.daklak.gov.vn"
    timeout: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> SmtpConfig | None:
        if not env.get("SMTP_HOST"):
            return None
        return cls(
            host=env["SMTP_HOST"],
            port=int(env.get("SMTP_PORT", cls.port)),
            security=env.get("SMTP_SECURITY", cls.security),
            username=env.get("SMTP_USERNAME") or None,
            password=env.get("SMTP_PASSWORD") or None,
            sender=env.get("SMTP_FROM", cls.sender),
            timeout=float(env.get("SMTP_TIMEOUT", cls.timeout)),
        )


def build_message(sender: str, to: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, subject
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message.set_content(body, charset="utf-8")
    return message


class SmtpMailer:
    def __init__(self, config: SmtpConfig) -> None:
        self.config = config

    def _connect(self) -> smtplib.SMTP:
        c = self.config
        if c.security == "ssl":
            return smtplib.SMTP_SSL(c.host, c.port, timeout=c.timeout)
        client = smtplib.SMTP(c.host, c.port, timeout=c.timeout)
        if c.security == "starttls":
            client.starttls()
        return client

    def send(self, to: str, subject: str, body: str) -> str | None:
        message = build_message(self.config.sender, to, subject, body)
        try:
            with self._connect() as client:
                if self.config.username:
                    client.login(self.config.username, self.config.password or "")
                client.send_message(message)
        except smtplib.SMTPAuthenticationError as exc:
            raise SendError("email", "permanent", "smtp login refused", exc.smtp_code) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            kind: Kind = "retry" if codes and all(400 <= c < 500 for c in codes) else "permanent"
            raise SendError(
                "email", kind, "recipient refused", codes[0] if codes else None
            ) from exc
        except smtplib.SMTPResponseException as exc:  # sender refused, data error, …
            kind = "retry" if 400 <= exc.smtp_code < 500 else "permanent"
            raise SendError("email", kind, "smtp error", exc.smtp_code) from exc
        except (smtplib.SMTPException, OSError) as exc:  # timeouts are OSErrors
            raise SendError("email", "retry", f"smtp {type(exc).__name__}") from exc
        return str(message["Message-ID"])


def default_mailer(env: Mapping[str, str] = os.environ) -> Mailer:
    config = SmtpConfig.from_env(env)
    return SmtpMailer(config) if config else OutboxMailer()
