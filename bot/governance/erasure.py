"""Erasure on request: what goes, and what the law makes us keep.

Removed: the channel binding, drafts, linking traces, hand-off texts and the conversation
history in the tracker store. Kept: submitted dossiers, consents and the audit log.
"""

from __future__ import annotations

import logging

from sqlalchemy import delete, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bot.core.models import ChannelBinding, DossierDraft, Handoff, LinkChallenge, LinkGuard
from bot.governance import audit

log = logging.getLogger(__name__)


def erase_sender(session: Session, channel: str, sender_id: str) -> None:
    for model in (LinkChallenge, LinkGuard, DossierDraft, ChannelBinding):
        session.execute(
            delete(model).where(model.channel == channel, model.channel_user_id == sender_id)
        )
    session.execute(update(Handoff).where(Handoff.sender_id == sender_id).values(reason=None))
    audit.record(
        session,
        f"{channel}:citizen",
        "erasure",
        target_type="conversation",
        target_id=sender_id,
        detail={"kept": ["dossiers", "consents", "audit_log"]},
    )


def purge_tracker(tracker_engine: Engine, sender_id: str, up_to: float) -> int:
    """Delete a conversation's events up to the erasure time from Rasa's SQL tracker store.

    Bounded by time so that running it again (events re-saved by a turn that was in flight,
    keeping their original timestamps) deletes them too, and nothing said afterwards.
    """
    with tracker_engine.begin() as conn:
        result = conn.execute(
            text("DELETE FROM events WHERE sender_id = :s AND timestamp <= :t"),
            {"s": sender_id, "t": up_to},
        )
    erased: int = result.rowcount
    log.info("erased %d tracker events of one conversation", erased)
    return erased
