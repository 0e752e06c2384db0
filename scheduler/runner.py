"""APScheduler 3 in the foreground, leading or waiting to lead."""

from __future__ import annotations

import logging
import os
import signal

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.blocking import BlockingScheduler

from bot.core.clock import TZ_NAME
from bot.core.config import load_settings, var_dir
from bot.core.db import get_engine
from scheduler import jobs
from scheduler.leader import Leadership

log = logging.getLogger(__name__)
TIMEZONE = TZ_NAME


def build_scheduler(database_url: str) -> BlockingScheduler:
    """Jobs persist in the project database; missed runs within the grace time run once.

    DELIVER_EVERY_SECONDS (60) sets how often the deliver job runs.
    """
    scheduler = BlockingScheduler(
        timezone=TIMEZONE,
        jobstores={"default": SQLAlchemyJobStore(url=database_url, tablename="scheduler_jobs")},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
    )
    hour, _, minute = os.environ.get("SCAN_TIME", "06:00").partition(":")
    scheduler.add_job(
        jobs.scan_job,
        "cron",
        hour=int(hour),
        minute=int(minute),
        id="scan",
        replace_existing=True,
        misfire_grace_time=18 * 3600,
    )
    every = float(os.environ.get("DELIVER_EVERY_SECONDS", "60"))
    scheduler.add_job(
        jobs.deliver_job,
        "interval",
        seconds=every,
        id="deliver",
        replace_existing=True,
        misfire_grace_time=max(int(every), 1),
    )
    return scheduler


def run() -> int:
    settings = load_settings()
    leadership = Leadership(get_engine(), var_dir() / "scheduler.lock")
    leadership.wait()
    scheduler = build_scheduler(settings.database_url)

    def stop(*_: object) -> None:
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    try:
        jobs.scan_job()  # catch up the days missed while no scheduler ran
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        leadership.release()
    return 0
