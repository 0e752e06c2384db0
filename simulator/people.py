"""Who the simulator plays: demo citizens with a stable identity on each channel, and the
webhooks each provider would send for them (signed with the stand-ins' secrets)."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.engine import Engine

from bot.catalogue.model import Catalogue
from bot.core.db import unit_of_work
from bot.core.models import Citizen
from bot.reminders.due import DueItem, citizens_with_dues, dues_of_citizen
from connectors.zalo import SIGNATURE_HEADER as ZALO_SIGNATURE_HEADER
from connectors.zalo_api import event_mac
from simulator.standins import (
    ZALO_OA_ID,
    Choice,
    Entry,
)

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
LABEL = "MÔ PHỎNG — không phải kênh thật"
CHANNELS = ("zalo", "telegram", "sms")
DEFAULT_RASA_URL = "http://127.0.0.1:5005"
Pressed = tuple["Entry", "Choice"] | None  # a bot message and the choice pressed on it
# Header names as connectors/telegram.py and connectors/sms.py check them.
TELEGRAM_SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
SMS_SECRET_HEADER = "X-Webhook-Secret"

DEMO_LIMIT = 30
FEATURED_SERVICE = "tam_tru_gia_han"  # the demo story: these citizens are listed first
FEATURED_LIMIT = 10
DUE_HORIZON_DAYS = 60
TELEGRAM_CHAT_BASE = 8_800_000_000_000  # simulated chat ids: this plus the citizen id
LINK_TIMEOUT = 30.0
NO_CODE_GRACE = 3.0  # the bot answered but no code came: how long to wait for the SMS still
OTP = re.compile(r"(?<!\d)(\d{6})(?!\d)")
DELIVERY_TIME = dt.time(9, 0)  # the local hour a simulated day's deliveries run at
ALL_DAY = (dt.time(0, 0), dt.time(23, 59, 59))  # the reminder hours of a simulated day
MAX_ROUNDS = 2000

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def zalo_user_id(citizen_id: int) -> str:
    """The simulated Zalo user id of a demo citizen (stable, never a real Zalo id)."""
    return f"sim{citizen_id:010d}"


def telegram_chat_id(citizen_id: int) -> int:
    return TELEGRAM_CHAT_BASE + citizen_id


@dataclass(frozen=True)
class Person:
    """A demo citizen and their simulated identity on each channel."""

    citizen_id: int
    name: str
    cccd: str
    phone: str | None

    @property
    def given_name(self) -> str:
        return self.name.split()[-1] if self.name.split() else "Công dân"

    def recipient(self, channel: str) -> str | None:
        """Who the bot writes to on `channel`: the inbox key of the conversation."""
        if channel == "zalo":
            return zalo_user_id(self.citizen_id)
        if channel == "telegram":
            return str(telegram_chat_id(self.citizen_id))
        return self.phone

    def conversations(self, channel: str) -> list[tuple[str, str]]:
        """The inbox keys shown as this channel's conversation (Zalo: chat and templates)."""
        recipient = self.recipient(channel)
        keys = [(channel, recipient)] if recipient else []
        if channel == "zalo":
            keys.append(("zns", zalo_user_id(self.citizen_id)))
            if self.phone:
                keys.append(("zns", self.phone))
        return keys


class Ids:
    """Increasing ids from the clock (microseconds): provider event ids stay unique across
    restarts of the simulator, as the channels drop a repeated one as a retry."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        self._last = max(self._last + 1, time.time_ns() // 1000)
        return self._last


# The webhooks the providers send, built as they build them ------------------------------


def zalo_text_webhook(
    app_id: str, oa_secret: str, user: str, text: str, msg_id: str, timestamp_ms: int
) -> tuple[bytes, dict[str, str]]:
    """A follower's `user_send_text` event, signed with X-ZEvent-Signature."""
    stamp = str(timestamp_ms)
    event = {
        "app_id": app_id,
        "user_id_by_app": user,
        "event_name": "user_send_text",
        "sender": {"id": user},
        "recipient": {"id": ZALO_OA_ID},
        "message": {"msg_id": msg_id, "text": text},
        "timestamp": stamp,
    }
    body = json.dumps(event, ensure_ascii=False).encode()
    mac = event_mac(app_id, oa_secret, body, stamp)
    return body, {ZALO_SIGNATURE_HEADER: f"mac={mac}", "Content-Type": "application/json"}


def telegram_update(
    update_id: int,
    chat: int,
    first_name: str,
    *,
    text: str | None = None,
    callback: tuple[str, str, int, str] | None = None,
    contact_phone: str | None = None,
) -> dict[str, Any]:
    """A private-chat update: a text, a shared own contact, or a callback query
    (`callback` = (query id, data, id of the bot's message, that message's text))."""
    user = {"id": chat, "is_bot": False, "first_name": first_name, "language_code": "vi"}
    now = int(time.time())
    if callback is not None:
        query_id, data, message_id, message_text = callback
        bot_message = {
            "message_id": message_id,
            "date": now,
            "chat": {"id": chat, "type": "private", "first_name": first_name},
            "text": message_text,
        }
        query = {
            "id": query_id,
            "from": user,
            "chat_instance": f"sim{chat}",
            "data": data,
            "message": bot_message,
        }
        return {"update_id": update_id, "callback_query": query}
    message: dict[str, Any] = {
        "message_id": update_id % 2**31,
        "date": now,
        "chat": {"id": chat, "type": "private", "first_name": first_name},
        "from": user,
    }
    if contact_phone is not None:
        message["contact"] = {
            "phone_number": contact_phone,
            "first_name": first_name,
            "user_id": chat,
        }
    else:
        message["text"] = text or ""
    return {"update_id": update_id, "message": message}


def sms_webhook(phone: str, text: str, sms_id: str, secret: str) -> tuple[bytes, dict[str, str]]:
    """An inbound SMS as a two-way gateway posts it (JSON `from`, `text`, `id`)."""
    body = json.dumps({"from": phone, "text": text, "id": sms_id}, ensure_ascii=False).encode()
    return body, {SMS_SECRET_HEADER: secret, "Content-Type": "application/json"}


class SimulatorError(Exception):
    """A request the simulator cannot carry out; `message` is shown to the tester."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _due_json(item: DueItem) -> dict[str, str]:
    return {
        "service": item.service.code,
        "name": item.service.name,
        "deadline": item.due.deadline.isoformat(),
    }


def demo_citizens(
    engine: Engine, catalogue: Catalogue, day: dt.date, limit: int = DEMO_LIMIT
) -> list[dict[str, Any]]:
    """Demo citizens with a phone and what is due for them: up to FEATURED_LIMIT due for
    FEATURED_SERVICE first, then others with something due; on a database where nothing is
    due, simply the first citizens with a phone. Full ID numbers and phones: demo data."""
    picked: dict[int, tuple[Citizen, list[DueItem]]] = {}
    with unit_of_work(engine) as session:
        if FEATURED_SERVICE in catalogue.codes:
            featured = citizens_with_dues(
                session, catalogue, day, DUE_HORIZON_DAYS, FEATURED_SERVICE
            )
            for citizen, _ in featured:
                if citizen.phone:
                    items = dues_of_citizen(session, catalogue, citizen, day, DUE_HORIZON_DAYS)
                    picked[citizen.id] = (citizen, items)
                if len(picked) >= min(FEATURED_LIMIT, limit):
                    break
        if len(picked) < limit:
            for citizen, items in citizens_with_dues(session, catalogue, day, DUE_HORIZON_DAYS):
                if citizen.phone and citizen.id not in picked:
                    picked[citizen.id] = (citizen, items)
                if len(picked) >= limit:
                    break
        if not picked:
            query = select(Citizen).where(Citizen.phone.is_not(None)).order_by(Citizen.id)
            picked = {c.id: (c, []) for c in session.scalars(query.limit(limit))}
        return [
            {
                "id": citizen.id,
                "name": citizen.full_name,
                "cccd": citizen.cccd,
                "phone": citizen.phone,
                "dues": [_due_json(item) for item in items],
                "zalo_user_id": zalo_user_id(citizen.id),
                "telegram_chat_id": telegram_chat_id(citizen.id),
            }
            for citizen, items in picked.values()
        ]
