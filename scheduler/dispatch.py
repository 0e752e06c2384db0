"""Dispatch of due reminder rows into citizens' conversations, inside allowed hours.

Each row is marked 'attempting' (committed) before the delivery call and 'sent' after it. A
crash in between leaves an 'attempting' row that is retried after `stale_after`; the delivery
layer's outbox makes the reminder id an idempotency key, so the retry does not send again what
the outbox recorded as sent. (A send the provider accepted just before the crash, with no
'sent' recorded yet, is sent again: without an idempotency key at the provider that window
cannot be closed; the outbox keeps its unfinished attempt as the trace.)

A row goes back to 'pending' for `defer_after`, without using up one of its attempts, when the
delivery could not start or finish for reasons that are not the reminder's: our own service in
front of the channels is down (`deferred`: the rest of the round waits too), or the outbox
still shows the key being sent by a worker whose claim is not yet stale.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm.attributes import flag_modified

from bot.catalogue.model import Catalogue
from bot.core.clock import LOCAL_TZ, local_to_stored, to_local, utcnow
from bot.core.db import unit_of_work
from bot.core.lifecycles import REMINDER, ReminderState
from bot.core.models import Business, Citizen, Reminder
from bot.delivery import outbox
from bot.delivery.deliverer import DeliveryResult, Notice, stale_after
from bot.identity.family import reminder_recipient
from bot.reminders.due import child_reminder_text
from bot.reminders.preferences import is_silenced
from bot.reminders.texts import render_reminder

log = logging.getLogger(__name__)


Deliver = Callable[[int, Notice, str], Awaitable[DeliveryResult]]


MAX_ATTEMPTS = 5
_R = ReminderState
# What counts toward a citizen's daily cap: sent today, or being sent now.
CAPPED_STATES = (_R.ATTEMPTING, _R.SENT)


@dataclass(frozen=True)
class DispatchConfig:
    start: dt.time = dt.time(7, 0)
    end: dt.time = dt.time(21, 0)
    per_citizen_per_day: int = 2
    stale_after: dt.timedelta = dt.timedelta(minutes=10)
    retry_after: dt.timedelta = dt.timedelta(minutes=30)
    defer_after: dt.timedelta = dt.timedelta(minutes=1)

    @classmethod
    def from_env(cls) -> DispatchConfig:
        """REMINDER_HOURS="07:00-21:00", REMINDERS_PER_CITIZEN_PER_DAY=2,
        DELIVERY_STALE_SECONDS=600 (an 'attempting' row of a dispatcher that died)."""
        start, _, end = os.environ.get("REMINDER_HOURS", "07:00-21:00").partition("-")
        stale = stale_after()
        return cls(
            start=dt.time.fromisoformat(start),
            end=dt.time.fromisoformat(end),
            per_citizen_per_day=int(os.environ.get("REMINDERS_PER_CITIZEN_PER_DAY", "2")),
            stale_after=stale,
            defer_after=min(cls.defer_after, stale),  # a dead worker's claim: when it is stale
        )


@dataclass
class DispatchReport:
    sent: int = 0
    skipped: int = 0
    deferred: int = 0
    waiting: int = 0  # back to pending: our service was down, or the key is being sent
    failed: int = 0
    outside_hours: bool = False
    errors: list[str] = field(default_factory=list)


def local(now: dt.datetime) -> dt.datetime:
    return to_local(now)


def batch_size(pending: int, now_local: dt.datetime, config: DispatchConfig) -> int:
    """Spread what is pending evenly over the minutes left in today's window."""
    end = dt.datetime.combine(now_local.date(), config.end, LOCAL_TZ)
    minutes_left = max((end - now_local).total_seconds() / 60, 1)
    return max(1, math.ceil(pending / minutes_left))


def next_window_start(now_local: dt.datetime, config: DispatchConfig) -> dt.datetime:
    """Naive UTC time of the next allowed window opening."""
    day = now_local.date() + dt.timedelta(days=1)
    return local_to_stored(day, config.start)


def recipient_of(session, reminder: Reminder, today: dt.date) -> Citizen | None:
    """The subject; a minor's reminders go to a parent the population data names for them
    (`bot.identity.family.reminder_recipient`), a business's to its representative."""
    if reminder.subject_type == "citizen":
        subject = session.get(Citizen, reminder.subject_id)
        parent = reminder_recipient(session, subject, today) if subject is not None else None
        return parent or subject
    business = session.get(Business, reminder.subject_id)
    return (
        session.get(Citizen, business.representative_id)
        if business and business.representative_id
        else None
    )


def notice_for(
    session, catalogue: Catalogue, reminder: Reminder, today: dt.date, recipient: Citizen
) -> Notice:
    """The reminder as a conversation turn (EXTERNAL_reminder), with text for e-mail and ZNS.
    A child's reminder told to a parent is a text naming the child: the reminder turn answers
    its subject's own reminders only, and the parent acts from "what is due" (list_due)."""
    service = catalogue.service(reminder.service_code)
    if reminder.subject_type == "citizen" and recipient.id != reminder.subject_id:
        child = session.get(Citizen, reminder.subject_id)
        return Notice(
            text=child_reminder_text(session, catalogue, reminder, recipient, child, today),
            kind="family_reminder",
            values={"reminder_id": reminder.id, "service": service.short_name},
            subject=f"Nhắc hạn cho con: {service.name}",
        )
    text = render_reminder(session, catalogue, reminder, today)
    return Notice(
        text=text,
        intent="EXTERNAL_reminder",
        entities={"reminder_id": str(reminder.id)},
        kind=reminder.service_code,
        values={"reminder_id": reminder.id, "service": service.short_name},
        subject=f"Nhắc hạn: {service.name}",
    )


def _claim(engine: Engine, config: DispatchConfig, now: dt.datetime, limit: int) -> list[int]:
    """Reset stale claims, then pick due pending rows (oldest first)."""
    today = local(now).date()
    with unit_of_work(engine) as session:
        session.execute(
            update(Reminder)
            .where(Reminder.state == _R.ATTEMPTING, Reminder.updated_at < now - config.stale_after)
            .values(state=_R.PENDING)
        )
    with unit_of_work(engine) as session:
        return list(
            session.scalars(
                select(Reminder.id)
                .where(
                    Reminder.state == _R.PENDING,
                    Reminder.due_on <= today,
                    (Reminder.send_after.is_(None)) | (Reminder.send_after <= now),
                )
                .order_by(Reminder.due_on, Reminder.id)
                .limit(limit)
            )
        )


def count_pending(engine: Engine, now: dt.datetime) -> int:
    with unit_of_work(engine) as session:
        return session.scalar(
            select(func.count(Reminder.id)).where(
                Reminder.state == _R.PENDING, Reminder.due_on <= local(now).date()
            )
        )


def _sent_today(session, citizen_id: int, now: dt.datetime) -> int:
    start = local_to_stored(local(now).date())
    business_ids = select(Business.id).where(Business.representative_id == citizen_id)
    return session.scalar(
        select(func.count(Reminder.id)).where(
            Reminder.state.in_(CAPPED_STATES),
            Reminder.updated_at >= start,
            ((Reminder.subject_type == "citizen") & (Reminder.subject_id == citizen_id))
            | ((Reminder.subject_type == "business") & Reminder.subject_id.in_(business_ids)),
        )
    )


async def dispatch(
    engine: Engine,
    catalogue: Catalogue,
    deliver: Deliver,
    now: dt.datetime | None = None,
    config: DispatchConfig | None = None,
) -> DispatchReport:
    """One dispatch round (run every minute)."""
    config = config or DispatchConfig.from_env()
    now = now or utcnow()
    report = DispatchReport()
    now_local = local(now)
    if not (config.start <= now_local.time() < config.end):
        report.outside_hours = True
        return report
    limit = batch_size(count_pending(engine, now), now_local, config)
    for reminder_id in _claim(engine, config, now, limit):
        with unit_of_work(engine) as session:
            reminder = session.get(Reminder, reminder_id)
            if reminder.state != _R.PENDING:
                continue  # another dispatcher took it
            citizen = recipient_of(session, reminder, now_local.date())
            if citizen is None:
                REMINDER.move(reminder, _R.FAILED)
                reminder.last_error = "no recipient"
                report.failed += 1
                continue
            if is_silenced(session, citizen.id, reminder.service_code, now_local.date()):
                REMINDER.move(reminder, _R.SKIPPED)
                report.skipped += 1
                continue
            if _sent_today(session, citizen.id, now) >= config.per_citizen_per_day:
                reminder.send_after = next_window_start(now_local, config)
                report.deferred += 1
                continue
            notice = notice_for(session, catalogue, reminder, now_local.date(), citizen)
            REMINDER.move(reminder, _R.ATTEMPTING)
            reminder.attempts += 1
            reminder.updated_at = now
            citizen_id, attempts = citizen.id, reminder.attempts
        # Committed: a crash from here on is recovered by the stale-claim reset.
        key = f"reminder:{reminder_id}"
        result = await deliver(citizen_id, notice, key)
        # Plain assignments below, not REMINDER.move: a submission during the delivery may have
        # converted the row already, and this round still records the delivery's outcome.
        with unit_of_work(engine) as session:
            reminder = session.get(Reminder, reminder_id)
            reminder.updated_at = now
            # Same value as the claim wrote: without the flag the UPDATE would leave the column
            # to its onupdate (the wall clock), and the per-citizen cap reads it with `now`.
            flag_modified(reminder, "updated_at")
            # "duplicate" also means another worker holds the outbox claim (a live one, or one
            # that died and whose claim is not stale yet): only a recorded send is 'sent'.
            busy = result.status == "duplicate" and outbox.sent_channel(session, key) is None
            if busy or result.status == "deferred":
                reminder.state, reminder.send_after = _R.PENDING, now + config.defer_after
                reminder.attempts = attempts - 1  # not the reminder's fault: keep its attempts
                reminder.last_error = (
                    "being sent by another worker" if busy else "; ".join(result.errors)[:500]
                )
                report.waiting += 1
                if not busy:
                    log.warning("dispatch paused, delivery waits: %s", reminder.last_error)
                    break  # the service is down for the other reminders too
            elif result.status in ("sent", "duplicate"):
                reminder.state, reminder.last_error = _R.SENT, None
                report.sent += 1
            elif result.status == "unreachable" or attempts >= MAX_ATTEMPTS:
                reminder.state, reminder.last_error = _R.FAILED, "; ".join(result.errors)[:500]
                report.failed += 1
            else:
                reminder.state, reminder.send_after = _R.PENDING, now + config.retry_after
                reminder.last_error = "; ".join(result.errors)[:500]
                report.errors.extend(result.errors)
    if report.sent or report.failed or report.waiting:
        log.info(
            "dispatch: %d sent, %d failed, %d deferred, %d waiting",
            report.sent,
            report.failed,
            report.deferred,
            report.waiting,
        )
    return report
