"""Command line: `python -m bot {migrate,import,seed,demo-citizens,officer,catalogue,
nlu-review}`."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bot.catalogue.model import CatalogueError, get_catalogue, load_catalogue
from bot.core.config import PROJECT_ROOT, load_settings
from bot.core.db import get_engine, unit_of_work
from bot.core.migrate import upgrade
from bot.data.tabular import FileFormatError
from bot.governance.pii import configure_logging
from bot.learning.heldout import HELD_OUT_SETS


class Progress:
    """Progress lines on stderr at most every `every` seconds, and a final one."""

    def __init__(self, label: str, every: float = 1.0) -> None:
        self.label, self.every, self.last, self.start = label, every, 0.0, time.monotonic()

    def __call__(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - self.last < self.every and done != total:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        share = f"/{total:,} ({100 * done / total:.0f} %)" if total else ""
        print(f"{self.label}: {done:,}{share}, {rate:,.0f}/s", file=sys.stderr, flush=True)


def _date(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def cmd_migrate(_: argparse.Namespace) -> int:
    upgrade(load_settings().database_url)
    print("Cơ sở dữ liệu đã ở phiên bản mới nhất.")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from bot.data.importer import import_file

    upgrade(load_settings().database_url)
    try:
        report = import_file(
            get_engine(), get_catalogue(), args.kind, Path(args.file), Progress("Đang nhập")
        )
    except FileFormatError as exc:
        print(f"Lỗi: {exc}. Không có dòng nào được ghi.", file=sys.stderr)
        return 2
    for row in report.rejected:
        print(f"Dòng {row.line}: {row.reason}")
    print(
        f"Loại '{report.kind}': {report.rows} dòng; thêm mới {report.inserted}, cập nhật "
        f"{report.updated}, không đổi {report.unchanged}, bị từ chối {len(report.rejected)}."
    )
    return 1 if report.rejected else 0


def cmd_seed(args: argparse.Namespace) -> int:
    from sqlalchemy import func, select

    from bot.core.models import Citizen
    from bot.data.seed import seed

    upgrade(load_settings().database_url)
    engine = get_engine()
    if args.if_empty:
        with engine.connect() as conn:
            if conn.execute(select(func.count()).select_from(Citizen.__table__)).scalar_one():
                return 0
    try:
        report = seed(
            engine,
            get_catalogue(),
            args.citizens,
            args.seed,
            args.today,
            Progress("Đang tạo dữ liệu mẫu"),
        )
    except RuntimeError as exc:
        print(f"Lỗi: {exc}", file=sys.stderr)
        return 1
    print(
        f"Đã tạo {report.citizens:,} công dân, {report.businesses:,} doanh nghiệp, "
        f"{report.records:,} bản ghi giấy tờ."
    )
    return 0


def cmd_demo_citizens(args: argparse.Namespace) -> int:
    from bot.reminders.due import citizens_with_dues

    upgrade(load_settings().database_url)
    catalogue = get_catalogue()
    if args.service and args.service not in catalogue.codes:
        print(f"Lỗi: không có thủ tục '{args.service}'", file=sys.stderr)
        return 2
    today = args.today or dt.date.today()
    shown = 0
    print("Demo data only: full ID numbers and phones are shown so testers can log in.")
    print(f"{'ID number':<13} {'phone':<11} {'name':<28} services due (deadline)")
    with unit_of_work() as session:
        for citizen, items in citizens_with_dues(
            session, catalogue, today, args.days, args.service
        ):
            dues = ", ".join(f"{i.service.code} ({i.due.deadline:%d/%m/%Y})" for i in items)
            print(f"{citizen.cccd:<13} {citizen.phone or '-':<11} {citizen.full_name:<28} {dues}")
            shown += 1
            if shown >= args.limit:
                break
    if not shown:
        print("(no citizen has a service due; run `python -m bot seed --citizens 1000`)")
    return 0


def cmd_officer_add(args: argparse.Namespace) -> int:
    from bot.identity.officers import add_officer

    upgrade(load_settings().database_url)
    if sys.stdin.isatty():
        password = getpass.getpass("Mật khẩu: ")
    else:
        password = sys.stdin.readline().rstrip("\n")
    try:
        with unit_of_work() as session:
            add_officer(session, args.username, password, args.role)
    except ValueError as exc:
        print(f"Lỗi: {exc}", file=sys.stderr)
        return 1
    print(f"Đã tạo tài khoản '{args.username}' với vai trò {args.role}.")
    return 0


def cmd_catalogue_check(args: argparse.Namespace) -> int:
    path = args.file or load_settings().catalogue_path
    try:
        catalogue = load_catalogue(path)
    except CatalogueError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(
        f"{path}: {len(catalogue.services)} services, {len(catalogue.record_kinds)} record kinds OK"
    )
    return 0


def cmd_nlu_review(args: argparse.Namespace) -> int:
    from bot.learning.heldout import HeldOutError
    from bot.learning.nlu_data import NluFileError
    from bot.learning.review import review

    try:
        report = review(
            Path(args.file),
            nlu_dir=args.nlu_dir,
            domain=args.domain,
            held_out_sets=args.held_out or list(HELD_OUT_SETS),
            dry_run=args.dry_run,
        )
    except (NluFileError, HeldOutError) as exc:
        print(f"Error: {exc}. Nothing was written.", file=sys.stderr)
        return 2
    width = max((len(v.example.intent) for v in report.verdicts), default=0)
    for verdict in report.verdicts:
        example = verdict.example
        reason = f" — {verdict.reason}" if verdict.reason else ""
        print(
            f"line {example.line:>4}  {verdict.decision:<9}  {example.intent:<{width}}  "
            f"{example.text}{reason}"
        )
    counts = (
        f"{report.count('accepted')} accepted, {report.count('duplicate')} duplicate, "
        f"{report.count('refused')} refused"
    )
    if report.written:
        after = f"merged into {report.written}; retrain with `make train`"
    elif args.dry_run:
        after = "dry run: nothing written"
    else:
        after = "nothing to add"
    print(f"{counts}; {after}.")
    return 1 if report.count("refused") else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)

    p = sub.add_parser("import", help="import a department's CSV/.xlsx list")
    p.add_argument("--kind", required=True, help="citizen, business or a record kind")
    p.add_argument("file")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("seed", help="generate deterministic synthetic demo data")
    p.add_argument("--citizens", type=int, required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--today", type=_date, help="reference date (default: today)")
    p.add_argument("--if-empty", action="store_true", help="do nothing if citizens exist")
    p.set_defaults(func=cmd_seed)

    p = sub.add_parser("demo-citizens", help="list demo citizens with services due")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--service", help="only this service code")
    p.add_argument("--days", type=int, default=60, help="horizon in days")
    p.add_argument("--today", type=_date)
    p.set_defaults(func=cmd_demo_citizens)

    p = sub.add_parser("officer", help="console accounts")
    officer = p.add_subparsers(dest="officer_command", required=True)
    p = officer.add_parser("add", help="create an account (password read from stdin)")
    p.add_argument("username")
    p.add_argument("--role", required=True, choices=["officer", "supervisor", "admin"])
    p.set_defaults(func=cmd_officer_add)

    p = sub.add_parser("catalogue", help="service catalogue tools")
    cat = p.add_subparsers(dest="catalogue_command", required=True)
    p = cat.add_parser("check", help="validate the catalogue file")
    p.add_argument("file", nargs="?")
    p.set_defaults(func=cmd_catalogue_check)

    p = sub.add_parser(
        "nlu-review", help="check a reviewed flag export and merge it into nlu/reviewed.yml"
    )
    p.add_argument("file", help="the console's NLU YAML export, reviewed")
    p.add_argument("--dry-run", action="store_true", help="print the decisions, write nothing")
    p.add_argument("--nlu-dir", type=Path, default=PROJECT_ROOT / "nlu", help="default: nlu/")
    p.add_argument("--domain", type=Path, default=PROJECT_ROOT / "domain.yml")
    p.add_argument(
        "--held-out",
        type=Path,
        action="append",
        help="a held-out set never to train on (repeatable; default: "
        + ", ".join(str(path.relative_to(PROJECT_ROOT)) for path in HELD_OUT_SETS)
        + ")",
    )
    p.set_defaults(func=cmd_nlu_review)
    return parser


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    args = build_parser().parse_args(argv)
    command: Callable[[argparse.Namespace], int] = args.func  # a cmd_* set by its subparser
    return command(args)


if __name__ == "__main__":
    sys.exit(main())
