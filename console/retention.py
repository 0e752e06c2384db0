"""Retention: conversation events older than the configured periods are deleted from the
tracker store (anonymous senders and linked citizens have separate periods), except in
conversations labelled `keep`; every run is written to the audit log."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass

from sqlalchemy import and_, delete, exists, select, update
from sqlalchemy.engine import Engine

from bot.core.clock import utcnow
from bot.core.db import unit_of_work
from bot.core.models import (
    ChannelBinding,
    ConversationLabel,
    ConversationSummary,
    Handoff,
    HandoffReply,
)
from bot.core.tracker_store import events
from bot.governance import audit
from console.indexer import refresh
from console.labels import KEEP

log = logging.getLogger(__name__)


@dataclass
class PurgeReport:
    anonymous_before: str
    linked_before: str
    conversations: int = 0
    events: int = 0
    kept: int = 0
    dry_run: bool = False


def purge_expired(
    engine: Engine,
    tracker: Engine,
    anonymous_days: int,
    linked_days: int,
    now: dt.datetime | None = None,
    dry_run: bool = False,
    threshold: float = 0.6,
) -> PurgeReport:
    now = now or utcnow()
    cutoffs = {
        False: now - dt.timedelta(days=anonymous_days),
        True: now - dt.timedelta(days=linked_days),
    }
    report = PurgeReport(
        cutoffs[False].isoformat(timespec="seconds"),
        cutoffs[True].isoformat(timespec="seconds"),
        dry_run=dry_run,
    )
    S = ConversationSummary
    linked = exists().where(
        and_(ChannelBinding.channel == S.channel, ChannelBinding.channel_user_id == S.sender_id)
    )
    kept = S.sender_id.in_(
        select(ConversationLabel.sender_id).where(ConversationLabel.label == KEEP)
    )
    with unit_of_work(engine) as session:
        candidates = session.execute(
            select(S.sender_id, S.first_at, linked.label("linked"), kept.label("kept")).where(
                S.first_at < max(cutoffs.values())
            )
        ).all()
    due: list[tuple[str, dt.datetime]] = []
    for sender, first_at, is_linked, is_kept in candidates:
        cutoff = cutoffs[bool(is_linked)]
        if first_at >= cutoff:
            continue
        if is_kept:
            report.kept += 1
            continue
        due.append((sender, cutoff))
    report.conversations = len(due)
    if dry_run or not due:
        report.events = 0 if not dry_run else _count(tracker, due)
    else:
        with tracker.begin() as conn:
            for sender, cutoff in due:
                stamp = cutoff.replace(tzinfo=dt.timezone.utc).timestamp()
                result = conn.execute(
                    delete(events).where(events.c.sender_id == sender, events.c.timestamp < stamp)
                )
                report.events += result.rowcount or 0
        with unit_of_work(engine) as session:
            for sender, cutoff in due:
                _forget_handoff_texts(session, sender, cutoff)
            refresh(session, tracker, [s for s, _ in due], threshold)
    with unit_of_work(engine) as session:
        audit.record(session, "retention", "retention.purge", detail=asdict(report))
    log.info("retention: %s", report)
    return report


def _count(tracker: Engine, due: list[tuple[str, dt.datetime]]) -> int:
    from sqlalchemy import func

    total = 0
    with tracker.connect() as conn:
        for sender, cutoff in due:
            stamp = cutoff.replace(tzinfo=dt.timezone.utc).timestamp()
            total += conn.scalar(
                select(func.count()).where(events.c.sender_id == sender, events.c.timestamp < stamp)
            )
    return total


def _forget_handoff_texts(session, sender: str, cutoff: dt.datetime) -> None:
    """What citizens and officers wrote in old hand-offs goes with the conversation."""
    old = select(Handoff.id).where(Handoff.sender_id == sender, Handoff.created_at < cutoff)
    session.execute(
        update(Handoff)
        .where(Handoff.id.in_(old))
        .values(reason=None)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(HandoffReply)
        .where(HandoffReply.handoff_id.in_(old))
        .values(text=None)
        .execution_options(synchronize_session=False)
    )
