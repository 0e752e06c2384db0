"""`python -m simulator {serve,env}`: the phone simulator and its provider stand-ins.

    python -m simulator serve [--port 8090]   # the page and the stand-ins on 127.0.0.1
    python -m simulator env [--port 8090]     # the environment for Rasa, actions, scheduler

The Rasa server, the action server and the scheduler must run with `env`'s variables for
their channels to talk to the stand-ins (`eval "$(python -m simulator env)"` before starting
them by hand). Neither command runs where real channel secrets are configured.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys

from bot.core.config import load_settings
from bot.core.migrate import upgrade
from bot.governance.pii import configure_logging
from simulator.standins import local_env, real_channels_configured

DEFAULT_PORT = 8090
REFUSED = (
    "Real channel secrets are configured (ZALO_*, TELEGRAM_BOT_TOKEN, SMS_*/ESMS_*): the "
    "simulator does not run next to real channels. Unset them to use it."
)


def _port(value: str) -> int:
    port = int(value)
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError("port must be 1-65535")
    return port


def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from bot.catalogue.model import get_catalogue
    from bot.core.db import get_engine
    from simulator.app import LABEL, create_simulator

    if real_channels_configured(os.environ):
        print(REFUSED, file=sys.stderr)
        return 2
    upgrade(load_settings().database_url)
    app = create_simulator(get_engine(), get_catalogue(), args.port)
    url = f"http://127.0.0.1:{args.port}"
    logging.getLogger(__name__).info("phone simulator (%s) on %s", LABEL, url)
    print(f"Phone simulator ({LABEL}) on {url}", flush=True)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    if real_channels_configured(os.environ):
        print(REFUSED, file=sys.stderr)
        return 2
    for name, value in sorted(local_env(args.port).items()):
        print(f"export {name}={shlex.quote(value)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    parser = argparse.ArgumentParser(prog="python -m simulator")
    sub = parser.add_subparsers(dest="command", required=True)
    default = int(os.environ.get("SIMULATOR_PORT", DEFAULT_PORT))
    for name, func, text in (
        ("serve", cmd_serve, "run the phone simulator and the provider stand-ins"),
        ("env", cmd_env, "print the environment that points the channels at the stand-ins"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--port", type=_port, default=default)
        p.set_defaults(func=func)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
