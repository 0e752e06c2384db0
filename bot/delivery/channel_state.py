"""Small pieces of per-channel state kept in the database, so they survive restarts and are
shared by every worker: webhook ids already seen, button payloads behind short ids, the last
buttons of a text-only conversation, and when each channel user last wrote.

Conversation ids are `"<channel>:<native id>"` (`telegram:123`, `zalo:456`, `sms:0905123456`).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.core.clock import utcnow
from bot.core.db import unit_of_work
from bot.core.models import ButtonPayload, ChannelActivity, ConversationButtons, WebhookEvent


def sender_id(channel: str, native_id: str | int) -> str:
    return f"{channel}:{native_id}"


def native_id(sender: str) -> str:
    """`telegram:123` → `123`; an id without a prefix is returned unchanged."""
    return sender.split(":", 1)[1] if ":" in sender else sender


def _insert(session: Session, model: Any) -> Any:
    """INSERT with ON CONFLICT support, for the session's engine."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


def _upsert(session: Session, model: Any, values: dict[str, Any], key: str) -> None:
    """Insert or update one row by primary key, atomically on both engines."""
    stmt = _insert(session, model).values(**values)
    updates = {k: getattr(stmt.excluded, k) for k in values if k != key}
    session.execute(stmt.on_conflict_do_update(index_elements=[key], set_=updates))


def first_time(engine: Engine, channel: str, event_id: str) -> bool:
    """Record an inbound event id; False when it was already recorded (a provider retry)."""
    try:
        with unit_of_work(engine) as session:
            session.add(WebhookEvent(channel=channel, event_id=str(event_id)[:128]))
    except IntegrityError:
        return False
    return True


def purge_events(engine: Engine, older_than: dt.timedelta = dt.timedelta(days=7)) -> int:
    """Forget webhook ids older than any provider's retry schedule (for a periodic job)."""
    with unit_of_work(engine) as session:
        result = session.execute(
            delete(WebhookEvent).where(WebhookEvent.created_at < utcnow() - older_than)
        )
        return result.rowcount or 0


def button_id(payload: str) -> str:
    """A 16-character id derived from the payload: same payload, same id, on every worker."""
    digest = hashlib.sha256(payload.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")[:16]


def remember_payloads(engine: Engine, payloads: Iterable[str]) -> list[str]:
    """Store payloads behind short ids (idempotent) and return the ids in order."""
    pairs = [(button_id(p), p) for p in payloads]
    with unit_of_work(engine) as session:
        known = set(
            session.scalars(
                select(ButtonPayload.id).where(ButtonPayload.id.in_([i for i, _ in pairs]))
            )
        )
        for ident, payload in dict(pairs).items():
            if ident not in known:
                session.execute(
                    _insert(session, ButtonPayload)
                    .values(id=ident, payload=payload, created_at=utcnow())
                    .on_conflict_do_nothing(index_elements=["id"])
                )
    return [i for i, _ in pairs]


def payload_for(engine: Engine, ident: str) -> str | None:
    with unit_of_work(engine) as session:
        payload: str | None = session.scalar(
            select(ButtonPayload.payload).where(ButtonPayload.id == ident)
        )
        return payload


def set_last_buttons(engine: Engine, sender: str, payloads: Sequence[str]) -> None:
    with unit_of_work(engine) as session:
        _upsert(
            session,
            ConversationButtons,
            {"sender_id": sender, "payloads": list(payloads), "updated_at": utcnow()},
            "sender_id",
        )


def choice_payload(
    engine: Engine, sender: str, reply: str, max_age: dt.timedelta = dt.timedelta(days=1)
) -> str | None:
    """The payload behind a numbered reply ("1", "2", …) to the last buttons, if any."""
    choice = reply.strip().rstrip(".")
    if not choice.isdigit() or len(choice) > 2:
        return None
    with unit_of_work(engine) as session:
        row = session.get(ConversationButtons, sender)
        if row is None or row.updated_at < utcnow() - max_age:
            return None
        index = int(choice) - 1
        return row.payloads[index] if 0 <= index < len(row.payloads) else None


def touch_activity(engine: Engine, sender: str, channel: str) -> None:
    """Remember that this user just wrote (opens Zalo's customer-service window)."""
    with unit_of_work(engine) as session:
        _upsert(
            session,
            ChannelActivity,
            {"sender_id": sender, "channel": channel, "last_inbound_at": utcnow()},
            "sender_id",
        )


def last_inbound(session: Session, senders: Sequence[str]) -> dict[str, dt.datetime]:
    if not senders:
        return {}
    rows = session.execute(
        select(ChannelActivity.sender_id, ChannelActivity.last_inbound_at).where(
            ChannelActivity.sender_id.in_(list(senders))
        )
    )
    return {sender: at for sender, at in rows}
