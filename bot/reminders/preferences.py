"""A citizen's reminder preferences: stop (one service or all) and remind-me-later.

The scheduler's scan reads these rows; `ALL_SERVICES` ('*') stands for every service.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.models import ReminderPreference

ALL_SERVICES = "*"
DEFAULT_POSTPONE_DAYS = 7


def _preference(session: Session, citizen_id: int, service_code: str) -> ReminderPreference:
    pref: ReminderPreference | None = session.scalar(
        select(ReminderPreference).where(
            ReminderPreference.citizen_id == citizen_id,
            ReminderPreference.service_code == service_code,
        )
    )
    if pref is None:
        pref = ReminderPreference(citizen_id=citizen_id, service_code=service_code, stopped=False)
        session.add(pref)
    return pref


def stop(session: Session, citizen_id: int, service_code: str | None) -> None:
    _preference(session, citizen_id, service_code or ALL_SERVICES).stopped = True


def resume(session: Session, citizen_id: int, service_code: str | None) -> None:
    pref = _preference(session, citizen_id, service_code or ALL_SERVICES)
    pref.stopped, pref.postponed_until = False, None


def postpone(
    session: Session, citizen_id: int, service_code: str | None, until: dt.date
) -> dt.date:
    _preference(session, citizen_id, service_code or ALL_SERVICES).postponed_until = until
    return until


def postpone_until(today: dt.date, text_date: str | None, days: int | None) -> dt.date:
    """'nhắc lại sau 7 ngày' → today + 7; a named date wins; default one week."""
    if text_date:
        day = dt.date.fromisoformat(text_date)
        if day > today:
            return day
    return today + dt.timedelta(days=days or DEFAULT_POSTPONE_DAYS)


def is_silenced(session: Session, citizen_id: int, service_code: str, on: dt.date) -> bool:
    """True when the citizen stopped or postponed reminders for this service (or all) past `on`."""
    prefs = session.scalars(
        select(ReminderPreference).where(
            ReminderPreference.citizen_id == citizen_id,
            ReminderPreference.service_code.in_([service_code, ALL_SERVICES]),
        )
    )
    return any(p.stopped or (p.postponed_until and p.postponed_until > on) for p in prefs)
