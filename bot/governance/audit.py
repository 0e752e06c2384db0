"""The audit log's one writer: who touched which personal data or privileged function, and why.

Every module that audits calls `record`; nothing else creates `AuditEntry` rows, so the fields
are bounded and named the same way everywhere, and a reader (the console's audit page, a
citizen's "who has seen my data" question) can rely on them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from bot.core.models import AuditEntry


def record(
    session: Session,
    actor: str,
    action: str,
    *,
    target_type: str | None = None,
    target_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """Add one entry to the caller's unit of work (written with it, or not at all)."""
    entry = AuditEntry(
        actor=actor[:80],
        action=action[:60],
        target_type=target_type[:40] if target_type else None,
        target_id=target_id[:80] if target_id else None,
        detail=detail or {},
    )
    session.add(entry)
    return entry
