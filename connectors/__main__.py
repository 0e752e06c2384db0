"""Operator commands for the channels (README, "Connecting channels").

python -m connectors telegram-webhook   # register TELEGRAM_WEBHOOK_URL with Telegram
python -m connectors zalo-token         # store a Zalo OA refresh token read from stdin
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from bot.core.db import get_engine
from bot.delivery.sending import SendError
from bot.governance.pii import configure_logging

ALLOWED_UPDATES = ["message", "edited_message", "callback_query"]


async def telegram_webhook() -> int:
    from connectors.telegram import TelegramApi, TelegramConfig

    config = TelegramConfig.from_env()
    if config is None or not config.webhook_url:
        print("set TELEGRAM_BOT_TOKEN, TELEGRAM_WEBHOOK_SECRET and TELEGRAM_WEBHOOK_URL")
        return 2
    api = TelegramApi(config)
    try:
        url, secret = config.webhook_url, config.secret
        await api.call(
            lambda: api.bot.set_webhook(
                url, secret_token=secret, allowed_updates=ALLOWED_UPDATES, max_connections=40
            )
        )
        info = await api.call(api.bot.get_webhook_info)
    finally:
        await api.close()
    print(f"webhook set to {info.url} (pending updates: {info.pending_update_count})")
    return 0


def zalo_token() -> int:
    from connectors.zalo_api import ZaloConfig, ZaloTokenStore

    config = ZaloConfig.from_env()
    if config is None:
        print("set ZALO_APP_ID, ZALO_APP_SECRET and ZALO_OA_SECRET first")
        return 2
    refresh_token = sys.stdin.readline().strip()
    if not refresh_token:
        print("paste the refresh token on standard input")
        return 2
    store = ZaloTokenStore(get_engine(), config)
    store.save("", refresh_token, 0)
    try:
        store.refresh("")  # spends it at once: proves it works and gets an access token
    except SendError as exc:
        print(f"Zalo refused the token: {exc.reason}")
        return 1
    print("stored; the access token is renewed automatically from now on")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m connectors", description=__doc__)
    parser.add_argument("command", choices=["telegram-webhook", "zalo-token"])
    args = parser.parse_args(argv)
    configure_logging()
    if args.command == "telegram-webhook":
        return asyncio.run(telegram_webhook())
    return zalo_token()


if __name__ == "__main__":
    sys.exit(main())
