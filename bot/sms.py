"""Outgoing SMS: text shaping and the gateway interface.

The embedded default appends each message to `var/sms_outbox.jsonl` (contract) so one-time
codes and reminders can be read on a development machine; a real provider implements the same
`SmsGateway` protocol (see `connectors/`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from pathlib import Path
from typing import Protocol

from bot.config import var_dir
from bot.vn import strip_diacritics

GSM_SEGMENT = 160
GSM_MULTIPART_SEGMENT = 153


def to_sms_text(text: str, max_segments: int = 1) -> str:
    """Unaccented single-line text that fits `max_segments` GSM segments (đ → d)."""
    plain = " ".join(strip_diacritics(text).split())
    plain = plain.encode("ascii", "ignore").decode("ascii")
    limit = GSM_SEGMENT if max_segments <= 1 else GSM_MULTIPART_SEGMENT * max_segments
    if len(plain) <= limit:
        return plain
    return plain[: limit - 3].rstrip() + "..."


class SmsGateway(Protocol):
    def send(self, to: str, text: str) -> None:
        """Send one SMS; raise on failure so the caller can retry or fall back."""


class OutboxSmsGateway:
    """Embedded default: one JSON line per message in the outbox file."""

    _lock = threading.Lock()

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or var_dir() / "sms_outbox.jsonl"

    def send(self, to: str, text: str) -> None:
        line = {
            "to": to,
            "text": text,
            "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")


def default_gateway() -> SmsGateway:
    """The gateway chosen by configuration; the outbox unless a provider is configured."""
    provider = os.environ.get("SMS_PROVIDER", "outbox")
    if provider == "outbox":
        return OutboxSmsGateway()
    from connectors.sms_providers import provider_from_env  # noqa: PLC0415

    return provider_from_env(provider)
