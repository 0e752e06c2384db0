"""Hand-off requests to officers; an open one keeps the bot quiet in that conversation."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.clock import utcnow
from bot.core.lifecycles import HANDOFF, HANDOFF_ACTIVE, HandoffStatus
from bot.core.models import Handoff


def open_handoff(
    session: Session, sender_id: str, channel: str, citizen_id: int | None, reason: str | None
) -> tuple[Handoff, bool]:
    """The sender's open request, or a new one; the flag says whether it was created now."""
    existing = active_handoff(session, sender_id)
    if existing is not None:
        return existing, False
    handoff = Handoff(
        sender_id=sender_id,
        channel=channel,
        citizen_id=citizen_id,
        status=HandoffStatus.OPEN,
        reason=(reason or "")[:500] or None,
    )
    session.add(handoff)
    session.flush()
    return handoff, True


def active_handoff(session: Session, sender_id: str) -> Handoff | None:
    handoff: Handoff | None = session.scalar(
        select(Handoff)
        .where(Handoff.sender_id == sender_id, Handoff.status.in_(HANDOFF_ACTIVE))
        .order_by(Handoff.id.desc())
        .limit(1)
    )
    return handoff


def close_handoff(session: Session, handoff: Handoff, officer: str) -> None:
    HANDOFF.move(handoff, HandoffStatus.CLOSED)
    handoff.closed_at = utcnow()
    handoff.officer = handoff.officer or officer
