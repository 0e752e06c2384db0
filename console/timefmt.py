"""Officers work in Vietnam time (`bot.core.clock`); the databases keep naive UTC."""

from __future__ import annotations

import datetime as dt

from bot.core.clock import local_to_stored, to_local


def local(value: dt.datetime | None) -> dt.datetime | None:
    """A stored time as the officer reads it (naive local)."""
    return None if value is None else to_local(value).replace(tzinfo=None)


def day_start_utc(day: dt.date) -> dt.datetime:
    """00:00 Vietnam time of `day`, as naive UTC."""
    return local_to_stored(day)


def fmt(value: dt.datetime | None, pattern: str = "%d/%m/%Y %H:%M") -> str:
    shown = local(value)
    return shown.strftime(pattern) if shown else ""


def waited(since: dt.datetime, now: dt.datetime) -> str:
    """'3 giờ 05 phút' style durations for queues."""
    minutes = max(int((now - since).total_seconds() // 60), 0)
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} ngày {hours} giờ"
    if hours:
        return f"{hours} giờ {mins:02d} phút"
    return f"{mins} phút"


def parse_day(text: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if text else None
    except ValueError:
        return None


def duration(value: dt.timedelta | None) -> str:
    if value is None:
        return "—"
    seconds = int(value.total_seconds())
    if seconds < 3600:
        return f"{seconds // 60} phút {seconds % 60:02d} giây"
    if seconds < 86400:
        return f"{seconds // 3600} giờ {seconds % 3600 // 60:02d} phút"
    return f"{seconds // 86400} ngày {seconds % 86400 // 3600} giờ"
