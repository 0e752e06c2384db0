"""The delivery outbox: one row per (idempotency key, channel) and one row per attempt.

An attempt row is committed before the request leaves, so a crash mid-send leaves a trace. A
delivery is claimed by switching its status to `sending` in one conditional UPDATE, so two
workers delivering the same reminder cannot both send it; a claim older than `stale_after` (a
worker that died) can be taken over.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.core.clock import utcnow
from bot.core.db import unit_of_work
from bot.core.lifecycles import DELIVERY_CLAIMABLE, AttemptOutcome, DeliveryStatus
from bot.core.models import Delivery, DeliveryAttempt


def sent_channel(session: Session, key: str) -> str | None:
    """The channel that already delivered this key, if any."""
    channel: str | None = session.scalar(
        select(Delivery.channel).where(
            Delivery.idempotency_key == key, Delivery.status == DeliveryStatus.SENT
        )
    )
    return channel


def sent_since(session: Session, channel: str, since: dt.datetime) -> int:
    """How many deliveries this channel made since `since` (a daily quota's count)."""
    count: int = session.scalar(
        select(func.count(Delivery.id)).where(
            Delivery.channel == channel,
            Delivery.status == DeliveryStatus.SENT,
            Delivery.sent_at >= since,
        )
    )
    return count


def claim(
    engine: Engine,
    key: str,
    channel: str,
    recipient: str,
    kind: str,
    citizen_id: int | None,
    stale_after: dt.timedelta = dt.timedelta(minutes=10),
) -> tuple[int, int] | None:
    """Claim the delivery and record its next attempt, in one transaction.

    Returns (delivery id, attempt id), or None when the key was sent or is being sent elsewhere.
    """
    try:
        with unit_of_work(engine) as session:
            row = Delivery(
                idempotency_key=key,
                channel=channel,
                recipient=recipient,
                kind=kind[:60],
                citizen_id=citizen_id,
                status=DeliveryStatus.SENDING,
                attempts=1,
            )
            session.add(row)
            session.flush()
            attempt = DeliveryAttempt(delivery_id=row.id, number=1, outcome=AttemptOutcome.STARTED)
            session.add(attempt)
            session.flush()
            return row.id, attempt.id
    except IntegrityError:
        pass
    now = utcnow()
    mine = and_(Delivery.idempotency_key == key, Delivery.channel == channel)
    with unit_of_work(engine) as session:
        result = session.execute(
            update(Delivery)
            .where(
                mine,
                or_(
                    Delivery.status.in_(DELIVERY_CLAIMABLE),
                    and_(
                        Delivery.status == DeliveryStatus.SENDING,
                        Delivery.updated_at < now - stale_after,
                    ),
                ),
            )
            .values(status=DeliveryStatus.SENDING, recipient=recipient, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            return None
        delivery_id = session.scalar(select(Delivery.id).where(mine))
        assert delivery_id is not None
        return delivery_id, _add_attempt(session, delivery_id)


def _add_attempt(session: Session, delivery_id: int) -> int:
    session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id)
        .values(attempts=Delivery.attempts + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    number = session.scalar(select(Delivery.attempts).where(Delivery.id == delivery_id))
    attempt = DeliveryAttempt(
        delivery_id=delivery_id, number=number, outcome=AttemptOutcome.STARTED
    )
    session.add(attempt)
    session.flush()
    attempt_id: int = attempt.id
    return attempt_id


def start_attempt(engine: Engine, delivery_id: int) -> int:
    """Record a further attempt (committed) before its request is sent; returns its id."""
    with unit_of_work(engine) as session:
        return _add_attempt(session, delivery_id)


def finish_attempt(
    engine: Engine,
    delivery_id: int,
    attempt_id: int,
    outcome: AttemptOutcome,
    delivery_status: DeliveryStatus,
    status_code: int | None = None,
    error: str | None = None,
    provider_message_id: str | None = None,
) -> None:
    """Complete the attempt and move the delivery to `delivery_status` in one transaction."""
    now = utcnow()
    values: dict[str, object] = {"status": delivery_status, "updated_at": now}
    if error:
        values["last_error"] = error
    if delivery_status == DeliveryStatus.SENT:
        values["sent_at"] = now
        values["provider_message_id"] = (provider_message_id or "")[:120] or None
    with unit_of_work(engine) as session:
        session.execute(
            update(DeliveryAttempt)
            .where(DeliveryAttempt.id == attempt_id)
            .values(outcome=outcome, status_code=status_code, error=error, finished_at=now)
            .execution_options(synchronize_session=False)
        )
        session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
