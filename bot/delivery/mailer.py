"""E-mail notices about dossier results: the `Mailer` interface, the texts, and the embedded
default that appends each mail to `var/mail_outbox.jsonl` (like SMS), so a development machine
sends nothing. The SMTP client lives with the other outbound clients: `connectors/smtp.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from bot.delivery.outbox_file import OutboxFile

SIGNATURE = "Trợ lý dịch vụ công tỉnh Đắk Lắk"


class Mailer(Protocol):
    def send(self, to: str, subject: str, body: str) -> str | None:
        """Send one mail; raise SendError. Returns the Message-ID."""


class OutboxMailer(OutboxFile):
    """Embedded default: one JSON line per mail in `var/mail_outbox.jsonl`."""

    def __init__(self, path: Path | None = None) -> None:
        super().__init__("mail_outbox.jsonl", path)

    def send(self, to: str, subject: str, body: str) -> str | None:
        self.append({"to": to, "subject": subject, "text": body})
        return None


def result_notice(
    full_name: str,
    dossier_code: str,
    service_name: str,
    outcome: str,
    note: str | None = None,
) -> tuple[str, str]:
    """Subject and body of the mail telling a citizen their dossier has a result."""
    subject = f"Kết quả hồ sơ {dossier_code} – {service_name}"
    lines = [
        f"Kính gửi Ông/Bà {full_name},",
        "",
        f"Hồ sơ {dossier_code} ({service_name}) của Ông/Bà đã có kết quả: {outcome}.",
    ]
    if note:
        lines.append(note)
    lines += [
        "",
        "Ông/Bà có thể hỏi tình trạng hồ sơ bằng cách nhắn mã hồ sơ cho trợ lý dịch vụ công "
        "trên Zalo, Telegram hoặc SMS.",
        "",
        "Trân trọng,",
        SIGNATURE,
        "(Thư gửi tự động, xin Ông/Bà vui lòng không trả lời thư này.)",
    ]
    return subject, "\n".join(lines)
