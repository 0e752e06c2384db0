"""Background jobs of the console process (APScheduler 3, module-level job functions with
stable ids): keep the conversation index current, purge expired sessions, apply retention."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.core.clock import TZ_NAME, utcnow
from bot.core.db import unit_of_work
from console import auth, indexer, retention
from console.web import DEPS, Deps

log = logging.getLogger(__name__)
SYNC_SECONDS = 5


def sync_job(deps: Deps) -> None:
    indexer.sync_all(deps.engine, deps.tracker, deps.settings.low_confidence)


def sessions_job(deps: Deps) -> None:
    with unit_of_work(deps.engine) as session:
        auth.purge_sessions(session, deps.settings, utcnow())


def retention_job(deps: Deps) -> None:
    s = deps.settings
    retention.purge_expired(
        deps.engine,
        deps.tracker,
        s.retention_anonymous_days,
        s.retention_linked_days,
        threshold=s.low_confidence,
    )


def schedule(scheduler: AsyncIOScheduler, deps: Deps) -> None:
    """Jobs run in the scheduler's thread pool, never on the event loop."""
    common = {"args": [deps], "replace_existing": True, "coalesce": True, "max_instances": 1}
    scheduler.add_job(
        sync_job,
        "interval",
        seconds=SYNC_SECONDS,
        id="console.sync",
        next_run_time=utcnow(),
        **common,
    )
    scheduler.add_job(sessions_job, "interval", hours=1, id="console.sessions", **common)
    scheduler.add_job(
        retention_job,
        "cron",
        hour=2,
        minute=30,
        timezone=TZ_NAME,
        id="console.retention",
        **common,
    )


async def start_jobs(app: web.Application) -> AsyncIterator[None]:
    scheduler = AsyncIOScheduler(timezone="UTC", executors={"default": {"type": "threadpool"}})
    schedule(scheduler, app[DEPS])
    scheduler.start()
    yield
    scheduler.shutdown(wait=False)
