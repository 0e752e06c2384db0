"""Masking of personal data for logs and screens, and a logging filter that enforces it."""

from __future__ import annotations

import logging
import re

# 12-digit ID numbers and Vietnamese phone numbers (0XXXXXXXXX or +84/84XXXXXXXXX) embedded in text.
_CCCD_IN_TEXT = re.compile(r"(?<!\d)(\d{3})\d{7}(\d{2})(?!\d)")
_PHONE_IN_TEXT = re.compile(r"(?<![\d+])((?:\+?84|0)\d)\d{6,7}(\d{2})(?!\d)")


def mask_cccd(cccd: str | None) -> str:
    """066190001234 → 066*******34."""
    if not cccd:
        return ""
    return cccd[:3] + "*" * (len(cccd) - 5) + cccd[-2:] if len(cccd) > 5 else "*" * len(cccd)


def mask_phone(phone: str | None) -> str:
    """0905123456 → 09******56."""
    if not phone:
        return ""
    return phone[:2] + "*" * (len(phone) - 4) + phone[-2:] if len(phone) > 4 else "*" * len(phone)


def mask_name(name: str | None) -> str:
    """Nguyễn Văn An → N. V. An: enough for an officer to recognise, not to identify."""
    if not name:
        return ""
    parts = name.split()
    return " ".join([p[0] + "." for p in parts[:-1]] + [parts[-1][0] + "***"])


def mask_text(text: str) -> str:
    """Mask every ID number and phone number found in free text."""
    text = _CCCD_IN_TEXT.sub(lambda m: m.group(1) + "*******" + m.group(2), text)
    return _PHONE_IN_TEXT.sub(lambda m: m.group(1) + "*" * (len(m.group(0)) - 4) + m.group(2), text)


class MaskingFilter(logging.Filter):
    """Rewrites each record's final message so no unmasked ID or phone reaches a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def install_masking() -> None:
    """Put the masking filter on every root handler (filters on loggers miss propagated records)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())


def configure_logging(level: int = logging.INFO) -> None:
    """Root logging for our own commands, masked."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    install_masking()
