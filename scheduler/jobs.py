"""Scheduled job bodies: plain module-level functions (APScheduler stores them by reference)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from bot.catalogue.model import Catalogue, get_catalogue
from bot.core.clock import today
from bot.core.db import get_engine, unit_of_work
from bot.core.models import ScanRun
from connectors.senders import open_deliverer
from scheduler.dispatch import dispatch
from scheduler.notices import send_payment_notices, send_status_notices
from scheduler.scan import scan

log = logging.getLogger(__name__)
MAX_CATCH_UP_DAYS = 31


def last_scanned_day(engine: Engine) -> dt.date | None:
    with unit_of_work(engine) as session:
        return session.scalar(select(func.max(ScanRun.day)))


def days_to_scan(last: dt.date | None, today: dt.date) -> list[dt.date]:
    """Every day since the last completed scan (catch-up after downtime), at most a month."""
    first = (
        today
        if last is None
        else max(last + dt.timedelta(days=1), today - dt.timedelta(days=MAX_CATCH_UP_DAYS))
    )
    return [first + dt.timedelta(days=n) for n in range((today - first).days + 1)]


def scan_due_days(
    engine: Engine,
    catalogue: Catalogue,
    today: dt.date,
    progress: Callable[[str, int], None] | None = None,
) -> dict[dt.date, dict[str, int]]:
    """Scan each missed day up to `today` and record it; a day already scanned is skipped."""
    results = {}
    for day in days_to_scan(last_scanned_day(engine), today):
        counts = scan(engine, catalogue, day, progress=progress)
        with unit_of_work(engine) as session:
            session.add(ScanRun(day=day, created=counts))
        results[day] = counts
    return results


def scan_job() -> None:
    scan_due_days(get_engine(), get_catalogue(), today())


async def _deliver_round() -> None:
    engine, catalogue = get_engine(), get_catalogue()
    async with open_deliverer(engine) as deliverer:
        await dispatch(engine, catalogue, deliverer.deliver)
        await send_status_notices(engine, deliverer.deliver)
        await send_payment_notices(engine, deliverer.deliver)


def deliver_job() -> None:
    """Every minute: due reminders, then status and payment notices."""
    asyncio.run(_deliver_round())
