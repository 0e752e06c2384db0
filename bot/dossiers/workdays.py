"""Working days and office hours (Mon–Fri; Saturday mornings are not counted)."""

from __future__ import annotations

import datetime as dt
import os

from bot.core.clock import LOCAL_TZ, to_local


def add_working_days(day: dt.date, count: int) -> dt.date:
    """The date `count` working days after `day` (weekends skipped)."""
    while count > 0:
        day += dt.timedelta(days=1)
        if day.weekday() < 5:
            count -= 1
    return day


def office_hours() -> tuple[dt.time, dt.time]:
    """Officers' hours, OFFICE_HOURS="07:30-17:00" by default."""
    start, _, end = os.environ.get("OFFICE_HOURS", "07:30-17:00").partition("-")
    return dt.time.fromisoformat(start), dt.time.fromisoformat(end)


def officers_available(now: dt.datetime) -> bool:
    """`now` is aware or naive UTC; officers work on weekdays within office hours."""
    local = to_local(now)
    start, end = office_hours()
    return local.weekday() < 5 and start <= local.time() < end


def next_office_opening(now: dt.datetime) -> dt.datetime:
    """The next local datetime officers are at work (for 'we will answer from …')."""
    local = to_local(now)
    start, _ = office_hours()
    day = local.date()
    candidate = dt.datetime.combine(day, start, LOCAL_TZ)
    while candidate <= local or candidate.weekday() >= 5:
        day += dt.timedelta(days=1)
        candidate = dt.datetime.combine(day, start, LOCAL_TZ)
    return candidate


def appointment_slots(now: dt.datetime, count: int = 3) -> list[dt.datetime]:
    """The next `count` half-day slots (08:00 and 14:00 local) on working days, from tomorrow."""
    local = to_local(now)
    slots: list[dt.datetime] = []
    day = local.date()
    while len(slots) < count:
        day += dt.timedelta(days=1)
        if day.weekday() >= 5:
            continue
        for hour in (8, 14):
            if len(slots) < count:
                slots.append(dt.datetime.combine(day, dt.time(hour), LOCAL_TZ))
    return slots
