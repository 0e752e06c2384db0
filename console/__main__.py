"""`python -m console {serve,sync,purge}`: the officer console and its jobs by hand."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Awaitable, Callable, MutableSequence
from dataclasses import asdict
from typing import cast

from bot.catalogue.model import get_catalogue
from bot.core.config import load_settings
from bot.core.db import get_engine, make_engine
from bot.core.migrate import upgrade
from bot.governance.pii import configure_logging
from console.config import ConsoleSettings, tracker_db_url


def cmd_serve(_: argparse.Namespace) -> int:
    from aiohttp import web

    from console.channels import ChannelReplySender, HttpRasaApi
    from console.web import Deps, create_app

    upgrade(load_settings().database_url)
    settings = ConsoleSettings.from_env()
    engine = get_engine()
    rasa = HttpRasaApi(settings.rasa_url, settings.rasa_token)
    replies = ChannelReplySender(engine)
    deps = Deps(engine, make_engine(tracker_db_url()), settings, get_catalogue(), rasa, replies)
    app = create_app(deps, background=True)

    async def close(_: web.Application) -> None:
        await rasa.close()
        await replies.close()

    # aiohttp 3.9 declares its signals for aiosignal < 1.4: with 1.4's generic `Signal` the
    # declared element type of `on_cleanup` is wrong, so name the right one.
    cleanup = cast("MutableSequence[Callable[[web.Application], Awaitable[None]]]", app.on_cleanup)
    cleanup.append(close)
    print(f"Officer console on http://{settings.host}:{settings.port}", flush=True)
    web.run_app(app, host=settings.host, port=settings.port, print=None, access_log=None)
    return 0


def cmd_sync(_: argparse.Namespace) -> int:
    from console.indexer import sync_all

    settings = ConsoleSettings.from_env()
    read = sync_all(get_engine(), make_engine(tracker_db_url()), settings.low_confidence)
    print(f"Đã đọc {read:,} sự kiện hội thoại.")
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    from console.retention import purge_expired

    settings = ConsoleSettings.from_env()
    report = purge_expired(
        get_engine(),
        make_engine(tracker_db_url()),
        settings.retention_anonymous_days,
        settings.retention_linked_days,
        dry_run=args.dry_run,
        threshold=settings.low_confidence,
    )
    print(json.dumps(asdict(report), ensure_ascii=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # a line per 5-second sync
    parser = argparse.ArgumentParser(prog="python -m console")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the officer console").set_defaults(func=cmd_serve)
    sub.add_parser("sync", help="index new tracker events now").set_defaults(func=cmd_sync)
    p = sub.add_parser("purge", help="apply the retention periods now")
    p.add_argument("--dry-run", action="store_true")
    p.set_defaults(func=cmd_purge)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
