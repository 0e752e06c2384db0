"""Hand-off requests to officers; an open one keeps the bot quiet in that conversation."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.models import Handoff, utcnow


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
        status="open",
        reason=(reason or "")[:500] or None,
    )
    session.add(handoff)
    session.flush()
    return handoff, True


def active_handoff(session: Session, sender_id: str) -> Handoff | None:
    return session.scalar(
        select(Handoff)
        .where(Handoff.sender_id == sender_id, Handoff.status.in_(["open", "taken"]))
        .order_by(Handoff.id.desc())
        .limit(1)
    )


def close_handoff(session: Session, handoff: Handoff, officer: str) -> None:
    handoff.status, handoff.closed_at = "closed", utcnow()
    handoff.officer = handoff.officer or officer
