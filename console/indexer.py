"""Keeps `console_conversations` and its tags in step with Rasa's tracker store.

Each pass reads the events written since the last pass (by id) and recomputes the summary of
every conversation they belong to from all of that conversation's events, so a pass can run
twice, or overlap a purge, without drifting. A short look-back below the watermark catches
transactions that committed out of id order on PostgreSQL.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bot.core.db import unit_of_work
from bot.core.models import ConsoleSyncState, ConversationSummary, ConversationTag
from bot.governance.pii import mask_text
from bot.identity.speaker import channel_of
from bot.vietnamese.vn import fold
from console.tracker import Entry, events, has_events_table, rows_to_entries

STATE_NAME = "tracker"
_WORD = re.compile(r"[a-z0-9]+")
_LONG_NUMBER = re.compile(r"^\d{9,}$")
MAX_TAGS = 400


def words(text: str) -> set[str]:
    """Accent-free lower-case words; ID and phone numbers are not indexed (privacy)."""
    return {w[:60] for w in _WORD.findall(fold(text)) if not _LONG_NUMBER.match(w)}


def query_words(text: str) -> list[str]:
    return sorted(words(text))[:8]


@dataclass
class Digest:
    """What the list needs about one conversation, and its tags."""

    values: dict[str, object]
    tags: set[str]


def summarize(sender_id: str, entries: Sequence[Entry], threshold: float) -> Digest:
    citizen = [e for e in entries if e.is_citizen]
    tags: set[str] = set()
    rating = None
    for entry in entries:
        if entry.kind == "user":
            if entry.intent:
                tags.add(f"i:{entry.intent}"[:64])
            for name, value in entry.entities:
                if name == "service":
                    tags.add(f"s:{value}"[:64])
                if name == "rating" and value.isdigit() and 1 <= int(value) <= 5:
                    rating = int(value)
            if entry.is_citizen and entry.text:
                tags.update(f"w:{w}" for w in words(entry.text))
        elif entry.kind == "slot" and entry.name in ("service", "reminder_service") and entry.value:
            tags.add(f"s:{entry.value}"[:64])
        elif entry.kind == "bot" and entry.text:
            # Codes the bot gave (dossier codes) are searchable; its boilerplate is not.
            tags.update(f"w:{w}" for w in words(entry.text) if any(c.isdigit() for c in w))
    handoff = any(
        (e.kind == "action" and e.name == "action_handoff") or e.kind == "pause" for e in entries
    )
    first_text = next((e.text for e in citizen if e.text), None)
    values: dict[str, object] = {
        "channel": channel_of(sender_id),
        "first_at": min(e.at for e in entries),
        "last_at": max(e.at for e in entries),
        "user_messages": len(citizen),
        "low_confidence": sum(e.low_confidence(threshold) for e in citizen),
        "fallbacks": sum(e.intent == "nlu_fallback" for e in citizen),
        "handoff": handoff,
        "rating": rating,
        "last_intent": next((e.intent for e in reversed(citizen) if e.intent), None),
        "preview": mask_text(" ".join(first_text.split()))[:200] if first_text else None,
        "max_event_id": max(e.event_id for e in entries),
    }
    return Digest(values, set(sorted(tags)[:MAX_TAGS]))


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def refresh(
    session: Session, tracker: Engine, senders: Iterable[str], threshold: float, chunk: int = 200
) -> int:
    """Recompute the summaries of these conversations (deleting those with no events left)."""
    ordered = sorted(set(senders))
    for part in _chunks(ordered, chunk):
        with tracker.connect() as conn:
            rows = conn.execute(
                select(
                    events.c.id,
                    events.c.sender_id,
                    events.c.type_name,
                    events.c.timestamp,
                    events.c.data,
                )
                .where(events.c.sender_id.in_(part))
                .order_by(events.c.id)
            ).all()
        grouped: dict[str, list] = defaultdict(list)
        for row in rows:
            grouped[row.sender_id].append(row)
        existing = {
            s.sender_id: s
            for s in session.scalars(
                select(ConversationSummary).where(ConversationSummary.sender_id.in_(part))
            )
        }
        digests = {
            sender: summarize(sender, rows_to_entries(grouped[sender]), threshold)
            for sender in part
            if grouped.get(sender)
        }
        gone = [s.id for sender, s in existing.items() if sender not in digests]
        objs: dict[str, ConversationSummary] = {}
        for sender, digest in digests.items():
            summary = existing.get(sender)
            if summary is None:
                summary = ConversationSummary(sender_id=sender)
                session.add(summary)
            for key, value in digest.values.items():
                setattr(summary, key, value)
            objs[sender] = summary
        session.flush()
        stale = [existing[s].id for s in digests if s in existing] + gone
        if stale:
            session.execute(
                delete(ConversationTag).where(ConversationTag.conversation_id.in_(stale))
            )
        if gone:
            session.execute(delete(ConversationSummary).where(ConversationSummary.id.in_(gone)))
        tag_rows = [
            {"tag": tag, "conversation_id": objs[sender].id}
            for sender, digest in digests.items()
            for tag in digest.tags
        ]
        if tag_rows:
            session.execute(insert(ConversationTag), tag_rows)
    return len(ordered)


def sync(
    engine: Engine,
    tracker: Engine,
    threshold: float = 0.6,
    batch: int = 5000,
    lookback: int = 1000,
) -> int:
    """One pass: returns how many new events were read (less than `batch` = caught up)."""
    if not has_events_table(tracker):
        return 0
    with unit_of_work(engine) as session:
        state = session.get(ConsoleSyncState, STATE_NAME)
        mark = state.last_event_id if state else 0
    with tracker.connect() as conn:
        new = conn.execute(
            select(events.c.id, events.c.sender_id)
            .where(events.c.id > mark)
            .order_by(events.c.id)
            .limit(batch)
        ).all()
        recent = conn.execute(
            select(events.c.sender_id, func.max(events.c.id))
            .where(events.c.id > max(mark - lookback, 0), events.c.id <= mark)
            .group_by(events.c.sender_id)
        ).all()
    senders = {row.sender_id for row in new}
    with unit_of_work(engine) as session:
        if recent:
            known = dict(
                session.execute(
                    select(ConversationSummary.sender_id, ConversationSummary.max_event_id).where(
                        ConversationSummary.sender_id.in_([r[0] for r in recent])
                    )
                ).all()
            )
            senders.update(s for s, top in recent if known.get(s, 0) < top)
        refresh(session, tracker, senders, threshold)
        if new:
            state = session.get(ConsoleSyncState, STATE_NAME)
            if state is None:
                session.add(ConsoleSyncState(name=STATE_NAME, last_event_id=new[-1].id))
            else:
                state.last_event_id = max(state.last_event_id, new[-1].id)
    return len(new)


def sync_all(engine: Engine, tracker: Engine, threshold: float = 0.6, batch: int = 5000) -> int:
    """Passes until caught up; returns the number of events read."""
    total = 0
    while (read := sync(engine, tracker, threshold, batch)) > 0:
        total += read
        if read < batch:
            break
    return total
