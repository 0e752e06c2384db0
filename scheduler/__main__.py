"""python -m scheduler scan --date YYYY-MM-DD [--dry-run] | run | status"""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from sqlalchemy import func, select

from bot.catalogue.model import get_catalogue
from bot.core.db import get_engine, unit_of_work
from bot.core.lifecycles import ReminderState
from bot.core.models import Reminder
from bot.governance.pii import configure_logging


def _scan(args: argparse.Namespace) -> int:
    from scheduler.scan import scan

    day = dt.date.fromisoformat(args.date) if args.date else dt.date.today()
    catalogue = get_catalogue()

    def progress(code: str, created: int) -> None:
        print(f"  … {code}: +{created}", file=sys.stderr, flush=True)

    counts = scan(get_engine(), catalogue, day, dry_run=args.dry_run, progress=progress)
    verb = "would create" if args.dry_run else "created"
    print(f"Scan of {day} ({verb}):")
    for code, count in counts.items():
        print(f"  {code:<28} {count:>8}")
    print(f"  {'total':<28} {sum(counts.values()):>8}")
    return 0


def _status(_: argparse.Namespace) -> int:
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    from bot.core.config import load_settings

    with unit_of_work(get_engine()) as session:
        rows = session.execute(
            select(Reminder.service_code, Reminder.state, func.count(Reminder.id))
            .group_by(Reminder.service_code, Reminder.state)
            .order_by(Reminder.service_code, Reminder.state)
        ).all()
    states = [state.value for state in ReminderState]
    table: dict[str, dict[str, int]] = {}
    for code, state, count in rows:
        table.setdefault(code, {})[state] = count
    print(f"{'service':<28}" + "".join(f"{s:>11}" for s in states))
    for code, counts in table.items():
        print(f"{code:<28}" + "".join(f"{counts.get(s, 0):>11}" for s in states))
    store = SQLAlchemyJobStore(url=load_settings().database_url, tablename="scheduler_jobs")
    store.start(None, "default")
    print("\nNext runs:")
    for job in store.get_all_jobs():
        print(f"  {job.id:<10} {job.next_run_time}")
    if not store.get_all_jobs():
        print("  (no scheduler has run yet)")
    return 0


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    parser = argparse.ArgumentParser(prog="python -m scheduler")
    sub = parser.add_subparsers(dest="command", required=True)
    scan = sub.add_parser("scan", help="create (or count) the reminders due on a date")
    scan.add_argument("--date", help="YYYY-MM-DD, default today")
    scan.add_argument("--dry-run", action="store_true", help="count only, write nothing")
    sub.add_parser("run", help="run the scheduler in the foreground")
    sub.add_parser("status", help="reminders by service and state, next run times")
    args = parser.parse_args(argv)
    if args.command == "scan":
        return _scan(args)
    if args.command == "status":
        return _status(args)
    from scheduler.runner import run

    return run()


if __name__ == "__main__":
    sys.exit(main())
