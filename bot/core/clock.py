"""The one clock: what time it is in Đắk Lắk, and how stored times relate to it.

Times are stored as naive UTC (`utcnow`), so SQLite and PostgreSQL compare them the same way.
Citizens and officers live in Asia/Ho_Chi_Minh (UTC+7 all year, no daylight saving), so days,
office hours, quiet hours and deadlines are reckoned there. Every module asks this one for both.
"""

from __future__ import annotations

import datetime as dt

TZ_NAME = "Asia/Ho_Chi_Minh"  # for libraries that take a zone name (APScheduler)
LOCAL_TZ = dt.timezone(dt.timedelta(hours=7), TZ_NAME)


def utcnow() -> dt.datetime:
    """Now, as stored: naive UTC."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def now() -> dt.datetime:
    """Now, in local time (aware)."""
    return dt.datetime.now(LOCAL_TZ)


def today() -> dt.date:
    """The local date: a citizen's "today" starts at local midnight, not UTC's."""
    return now().date()


def to_local(moment: dt.datetime) -> dt.datetime:
    """A stored (naive UTC) or aware time, in local time (aware)."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)
    return aware.astimezone(LOCAL_TZ)


def local_to_stored(day: dt.date, time: dt.time = dt.time()) -> dt.datetime:
    """A local day and time as stored: naive UTC."""
    return dt.datetime.combine(day, time, LOCAL_TZ).astimezone(dt.timezone.utc).replace(tzinfo=None)
