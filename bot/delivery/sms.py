"""Outgoing SMS: text shaping and the gateway interface.

The embedded default appends each message to `var/sms_outbox.jsonl` (contract) so one-time
codes and reminders can be read on a development machine; a real provider implements the same
`SmsGateway` protocol (see `connectors/`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from bot.delivery.outbox_file import OutboxFile
from bot.vietnamese.vn import strip_diacritics

GSM_SEGMENT = 160
GSM_MULTIPART_SEGMENT = 153


def sms_limit(max_segments: int = 1) -> int:
    """Characters that fit `max_segments` GSM-7 segments (153 each once concatenated)."""
    return GSM_SEGMENT if max_segments <= 1 else GSM_MULTIPART_SEGMENT * max_segments


def to_sms_text(text: str, max_segments: int = 1) -> str:
    """Unaccented single-line text that fits `max_segments` GSM segments (đ → d)."""
    plain = " ".join(strip_diacritics(text).split())
    plain = plain.encode("ascii", "ignore").decode("ascii")
    limit = sms_limit(max_segments)
    if len(plain) <= limit:
        return plain
    return plain[: limit - 3].rstrip() + "..."


def to_sms_with_choices(text: str, titles: Sequence[str], max_segments: int = 1) -> str:
    """Text followed by numbered choices ("Tra loi 1 de dong y, 2 de nhac lai sau").

    The choices are what the citizen needs to answer, so the text is shortened, never them.
    """
    labels = [to_sms_text(t) for t in titles]
    labels = [label[:1].lower() + label[1:] for label in labels]
    choices = "Tra loi " + ", ".join(f"{i} de {label}" for i, label in enumerate(labels, 1))
    limit = sms_limit(max_segments)
    choices = to_sms_text(choices, max_segments)
    budget = limit - len(choices) - 1
    body = to_sms_text(text, max_segments)
    if budget < 10:
        return choices
    if len(body) > budget:
        body = body[: budget - 3].rstrip() + "..."
    body = body if body.endswith((".", "?", "!", ":", "...")) or not body else body + "."
    return f"{body} {choices}"[:limit] if body else choices


class SmsGateway(Protocol):
    def send(self, to: str, text: str, request_id: str | None = None) -> str | None:
        """Send one SMS; raise on failure so the caller can retry or fall back.

        `request_id` lets a provider drop a repeated request (idempotency); the return value is
        the provider's message id when it gives one.
        """


class OutboxSmsGateway(OutboxFile):
    """Embedded default: one JSON line per message in `var/sms_outbox.jsonl` (contract)."""

    def __init__(self, path: Path | None = None) -> None:
        super().__init__("sms_outbox.jsonl", path)

    def send(self, to: str, text: str, request_id: str | None = None) -> str | None:
        self.append({"to": to, "text": text})
        return None
