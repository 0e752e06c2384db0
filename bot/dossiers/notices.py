"""Texts of dossier status notices (sent by the scheduler, said by the status action)."""

from __future__ import annotations

from bot.dossiers.submission import STATUS_LABELS


def status_text(code: str, status: str, note: str | None) -> str:
    text = f"Hồ sơ {code} của Ông/Bà: {STATUS_LABELS.get(status, status)}."
    return text + (f" Ghi chú của cán bộ: {note}" if note else "")
