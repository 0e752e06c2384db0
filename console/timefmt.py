"""Officers work in Vietnam time (UTC+7); the databases keep naive UTC."""

from __future__ import annotations

import datetime as dt

VN = dt.timezone(dt.timedelta(hours=7))


def local(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.timezone.utc).astimezone(VN).replace(tzinfo=None)


def day_start_utc(day: dt.date) -> dt.datetime:
    """00:00 Vietnam time of `day`, as naive UTC."""
    return dt.datetime.combine(day, dt.time(), VN).astimezone(dt.timezone.utc).replace(tzinfo=None)


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
