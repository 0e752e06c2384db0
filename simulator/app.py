"""The phone simulator: a page where a tester plays a demo citizen on Zalo, Telegram or SMS,
and its HTTP API, on the same 127.0.0.1 server as the provider stand-ins (`standins.py`).

What the citizen "sends" becomes the webhook the real provider would send (signed, with the
channel's secret), posted to the Rasa server's `/webhooks/<channel>/webhook`; what the bot
answers reaches the stand-ins through the real connectors and is shown as chat bubbles. The
proactive side runs through the real pipeline too: `/sim/run-day` scans a day and delivers what
is due as the scheduler would.

Routes: `GET /` (the page), `GET /sim/citizens`, `POST /sim/send`, `POST /sim/link`,
`GET /sim/messages`, `POST /sim/run-day`, `GET /sim/image/<id>`, `/static/…`, and the
stand-ins' provider routes under `/zalo`, `/telegram`, `/esms`. Only requests addressed to
127.0.0.1/localhost on our port are served (a page of another site, or a DNS-rebinding name,
cannot drive it), and the simulator API takes JSON only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping, MutableSequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlparse

import httpx
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.engine import Engine

from bot.catalogue.model import Catalogue
from bot.core.clock import local_to_stored, today
from bot.core.db import unit_of_work
from bot.core.models import Citizen
from bot.reminders.due import DueItem, citizens_with_dues, dues_of_citizen
from connectors.senders import open_deliverer
from connectors.zalo import SIGNATURE_HEADER as ZALO_SIGNATURE_HEADER
from connectors.zalo_api import event_mac
from scheduler.dispatch import DispatchConfig, dispatch
from scheduler.notices import send_payment_notices, send_status_notices
from scheduler.scan import scan
from simulator.standins import (
    MAX_IMAGE_BYTES,
    ZALO_OA_ID,
    Choice,
    Entry,
    Inbox,
    StandinConfig,
    StandIns,
    local_env,
    real_channels_configured,
)

logger = logging.getLogger(__name__)

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


class Simulator:
    """The simulated citizens' side: webhooks to Rasa, linking, the day's reminders."""

    def __init__(
        self,
        engine: Engine,
        catalogue: Catalogue,
        env: Mapping[str, str],
        rasa_url: str,
        inbox: Inbox,
        standins: StandIns,
        link_timeout: float = LINK_TIMEOUT,
    ) -> None:
        self.engine, self.catalogue, self.env = engine, catalogue, dict(env)
        self.rasa_url = rasa_url.rstrip("/")
        self.inbox, self.standins, self.link_timeout = inbox, standins, link_timeout
        self.config = StandinConfig.from_env(env)
        self.ids = Ids()
        self._people: dict[int, Person] = {}
        self._client: httpx.AsyncClient | None = None
        self._running_day = asyncio.Lock()

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=15.0)
        return self._client

    async def close(self, _: web.Application | None = None) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def person(self, citizen_id: int) -> Person:
        if citizen_id not in self._people:

            def load() -> Person | None:
                with unit_of_work(self.engine) as session:
                    c = session.get(Citizen, citizen_id)
                    return None if c is None else Person(c.id, c.full_name, c.cccd, c.phone)

            found = await asyncio.to_thread(load)
            if found is None:
                raise SimulatorError(404, "Không tìm thấy công dân này trong dữ liệu mẫu.")
            self._people[citizen_id] = found
        return self._people[citizen_id]

    # Inbound: what the citizen sends ------------------------------------------------------

    async def _post(self, channel: str, body: bytes, headers: Mapping[str, str]) -> None:
        url = f"{self.rasa_url}/webhooks/{channel}/webhook"
        try:
            answer = await self.client.post(url, content=body, headers=dict(headers))
        except httpx.HTTPError as exc:
            logger.warning("webhook to %s failed: %s", url, type(exc).__name__)
            raise SimulatorError(
                502,
                f"Không gửi được tới máy chủ Rasa ({self.rasa_url}). "
                "Ông/Bà kiểm tra máy chủ Rasa đã chạy chưa.",
            ) from exc
        if answer.status_code == 503:
            raise SimulatorError(
                502,
                f"Máy chủ Rasa trả lời 503: kênh {channel} chưa bật (máy chủ cần chạy với môi "
                "trường của trình mô phỏng, python -m simulator env) hoặc đang tạm gián đoạn.",
            )
        if answer.status_code >= 300:
            raise SimulatorError(
                502, f"Máy chủ Rasa từ chối tin nhắn (mã {answer.status_code}): {answer.text[:200]}"
            )

    async def send(
        self, person: Person, channel: str, text: str | None = None, pressed: Pressed = None
    ) -> Entry:
        """Send a text, or press a choice of one of the bot's messages (`pressed`: that message
        and the choice), as the provider would deliver it; the citizen's side of the
        conversation is recorded first."""
        press, choice = pressed or (None, None)
        recipient = person.recipient(channel)
        if recipient is None:
            raise SimulatorError(400, "Công dân này không có số điện thoại để nhắn SMS.")
        if choice is not None and choice.kind == "url":
            raise SimulatorError(400, "Nút này mở một đường liên kết, không gửi tin nhắn.")
        shown = choice.title if choice is not None else (text or "")
        if choice is not None and choice.kind == "contact":
            shown = f"Đã chia sẻ số điện thoại {person.phone or ''}".strip()
        if choice is None and not (text or "").strip():
            raise SimulatorError(400, "Ông/Bà chưa nhập nội dung tin nhắn.")
        entry = self.inbox.add(channel, recipient, "me", shown)
        if channel == "zalo":
            # A Zalo button sends its payload as the user's own text message.
            message = choice.value if choice is not None else text or ""
            ident = self.ids.next()
            body, headers = zalo_text_webhook(
                self.config.zalo_app_id,
                self.config.zalo_oa_secret,
                recipient,
                message,
                f"sim{ident}",
                ident // 1000,
            )
        elif channel == "telegram":
            update = self._telegram_update(person, text, press, choice)
            body = json.dumps(update, ensure_ascii=False).encode()
            headers = {
                TELEGRAM_SECRET_HEADER: self.config.telegram_webhook_secret,
                "Content-Type": "application/json",
            }
        else:
            message = choice.value if choice is not None else text or ""
            body, headers = sms_webhook(
                recipient, message, f"sim{self.ids.next()}", self.config.sms_webhook_secret
            )
        await self._post(channel, body, headers)
        return entry

    def _telegram_update(
        self, person: Person, text: str | None, press: Entry | None, choice: Choice | None
    ) -> dict[str, Any]:
        chat, update_id = telegram_chat_id(person.citizen_id), self.ids.next()
        if choice is None:
            return telegram_update(update_id, chat, person.given_name, text=text)
        if choice.kind == "contact":
            phone = person.phone or ""
            return telegram_update(update_id, chat, person.given_name, contact_phone=phone)
        if choice.kind == "callback" and press is not None:
            ref = int(press.ref) if press.ref.isdigit() else 0
            callback = (f"sim{update_id}", choice.value, ref, press.text)
            return telegram_update(update_id, chat, person.given_name, callback=callback)
        return telegram_update(update_id, chat, person.given_name, text=choice.value)

    def find_choice(self, person: Person, channel: str, button: Any) -> tuple[Entry, Choice]:
        """`button` = {"message": <id>, "index": <n>} (what the page sends), or the title or
        value of a button, looked for in the bot's newest messages first."""
        keys = person.conversations(channel)
        if isinstance(button, dict):
            seq, index = button.get("message"), button.get("index")
            entry = self.inbox.entry(keys, seq) if isinstance(seq, int) else None
            if entry is not None and isinstance(index, int) and 0 <= index < len(entry.choices):
                return entry, entry.choices[index]
        elif isinstance(button, str):
            for entry in reversed(self.inbox.entries(keys)):
                for choice in entry.choices:
                    if button in (choice.title, choice.value):
                        return entry, choice
        raise SimulatorError(400, "Không tìm thấy nút này trong các tin nhắn của trợ lý.")

    # Linking ------------------------------------------------------------------------------

    async def link(self, person: Person, channel: str) -> dict[str, Any]:
        """The real linking conversation: the ID number, the code from the SMS, the code."""
        if channel == "sms":
            return {
                "status": "not_needed",
                "message": "Trên kênh SMS không cần liên kết: tin nhắn từ số điện thoại đã đăng "
                "ký được nhận diện theo số gửi.",
            }
        if not person.phone:
            raise SimulatorError(400, "Công dân này không có số điện thoại để nhận mã xác thực.")
        conversation = person.conversations(channel)
        start = self.inbox.last
        await self.send(person, channel, person.cccd)
        code, replies = await self._wait_for_code(person.phone, conversation, start)
        if code is None:
            already = any("đã xác thực" in r.lower() for r in replies)
            return {
                "status": "already_linked" if already else "no_code",
                "message": replies[-1] if replies else "Không nhận được SMS mã xác thực.",
            }
        # The bot's answer to the ID number follows the SMS: let it arrive first, so that the
        # answer awaited below is the one to the code.
        await self._wait_for_reply(conversation, start, NO_CODE_GRACE)
        start = self.inbox.last
        await self.send(person, channel, code)
        answer = await self._wait_for_reply(conversation, start, self.link_timeout)
        linked = answer is not None and "thành công" in answer.lower()
        return {
            "status": "linked" if linked else "not_linked",
            "code": code,
            "message": answer or "Trợ lý chưa trả lời sau khi nhận mã.",
        }

    async def _wait_for_code(
        self, phone: str, conversation: list[tuple[str, str]], start: int
    ) -> tuple[str | None, list[str]]:
        loop = asyncio.get_running_loop()
        deadline, answered_at = loop.time() + self.link_timeout, None
        while loop.time() < deadline:
            for entry in self.inbox.entries([("sms", phone)], start):
                found = OTP.search(entry.text)
                if found and "xac thuc" in entry.text.lower():
                    return found.group(1), []
            replies = [e.text for e in self.inbox.entries(conversation, start) if e.sender == "bot"]
            if replies and answered_at is None:
                answered_at = loop.time()
            if answered_at is not None and loop.time() - answered_at > NO_CODE_GRACE:
                return None, replies
            await asyncio.sleep(0.1)
        replies = [e.text for e in self.inbox.entries(conversation, start) if e.sender == "bot"]
        return None, replies

    async def _wait_for_reply(
        self, conversation: list[tuple[str, str]], start: int, timeout: float
    ) -> str | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            replies = [e for e in self.inbox.entries(conversation, start) if e.sender == "bot"]
            if replies:
                return replies[0].text
            await asyncio.sleep(0.1)
        return None

    # The proactive side: one simulated day ------------------------------------------------

    def deliver_env(self) -> dict[str, str]:
        return {**os.environ, **self.env, "RASA_URL": self.rasa_url}

    async def run_day(self, day: dt.date) -> dict[str, Any]:
        """Scan `day`, then deliver as the scheduler would at 09:00 of that day, in a thread
        with its own event loop so the page and the stand-ins keep answering meanwhile."""
        if self._running_day.locked():
            raise SimulatorError(409, "Đang chạy nhắc việc cho một ngày khác, xin chờ.")
        async with self._running_day:
            return await asyncio.to_thread(lambda: asyncio.run(self._run_day(day)))

    async def _run_day(self, day: dt.date) -> dict[str, Any]:
        created = scan(self.engine, self.catalogue, day)
        now = local_to_stored(day, DELIVERY_TIME)
        start, end = ALL_DAY
        config = dataclasses.replace(DispatchConfig.from_env(), start=start, end=end)
        totals = {"sent": 0, "skipped": 0, "deferred": 0, "waiting": 0, "failed": 0}
        errors: list[str] = []
        rounds = 0
        async with open_deliverer(self.engine, self.deliver_env()) as deliverer:
            while rounds < MAX_ROUNDS:
                rounds += 1
                report = await dispatch(
                    self.engine, self.catalogue, deliverer.deliver, now=now, config=config
                )
                for name in totals:
                    totals[name] += getattr(report, name)
                errors.extend(report.errors)
                moved = report.sent + report.skipped + report.deferred + report.failed
                if report.waiting or not (moved or report.errors):
                    break
            status = await send_status_notices(self.engine, deliverer.deliver)
            payments = await send_payment_notices(self.engine, deliverer.deliver)
            payments += await send_payment_notices(self.engine, deliverer.deliver, now=now)
        return {
            "date": day.isoformat(),
            "created": sum(created.values()),
            "created_by_service": {code: n for code, n in created.items() if n},
            "reminders": totals,
            "rounds": rounds,
            "status_notices": status,
            "payment_notices": payments,
            "errors": errors[:10],
        }


# HTTP --------------------------------------------------------------------------------------


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _local_only(port: int) -> Any:
    hosts = {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.host not in hosts:
            return _error(421, "Trình mô phỏng chỉ phục vụ địa chỉ 127.0.0.1.")
        if request.method == "POST" and request.path.startswith("/sim/"):
            origin = request.headers.get("Origin")
            if origin and urlparse(origin).netloc not in hosts:
                return _error(403, "Yêu cầu từ trang khác bị từ chối.")
            if request.content_type != "application/json":
                return _error(415, "Cần gửi JSON.")
        try:
            response = await handler(request)
        except SimulatorError as exc:
            response = _error(exc.status, exc.message)
        except web.HTTPException as exc:
            response = exc
        if not request.path.startswith(("/zalo/", "/telegram/", "/esms/")):
            response.headers.setdefault("Content-Security-Policy", CSP)
            response.headers["X-Content-Type-Options"] = "nosniff"
            response.headers["X-Frame-Options"] = "DENY"
            response.headers["Referrer-Policy"] = "no-referrer"
            response.headers.setdefault("Cache-Control", "no-store")
        if isinstance(response, web.HTTPException):
            raise response
        return response

    return middleware


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise SimulatorError(400, "Nội dung không phải JSON hợp lệ.") from exc
    if not isinstance(body, dict):
        raise SimulatorError(400, "Nội dung phải là một đối tượng JSON.")
    return body


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise SimulatorError(400, f"Thiếu hoặc sai {name}.")
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise SimulatorError(400, f"Thiếu hoặc sai {name}.") from exc


def _channel(value: Any) -> str:
    if value not in CHANNELS:
        raise SimulatorError(400, "Kênh phải là zalo, telegram hoặc sms.")
    return str(value)


def create_simulator(
    engine: Engine,
    catalogue: Catalogue,
    port: int,
    *,
    rasa_url: str | None = None,
    environ: Mapping[str, str] = os.environ,
    link_timeout: float = LINK_TIMEOUT,
) -> web.Application:
    """The simulator and the stand-ins as one aiohttp application, to be served on
    127.0.0.1:`port`. Refuses (RuntimeError) when `environ` holds real channel secrets."""
    if real_channels_configured(environ):
        raise RuntimeError(
            "Real channel secrets are configured (ZALO_*, TELEGRAM_BOT_TOKEN, SMS_*/ESMS_*): "
            "the simulator's provider stand-ins would stand in for real providers. Unset them "
            "to run the simulator."
        )
    env = local_env(port)
    inbox = Inbox()
    standins = StandIns(StandinConfig.from_env(env), inbox)
    rasa = rasa_url or environ.get("RASA_URL") or DEFAULT_RASA_URL
    sim = Simulator(engine, catalogue, env, rasa, inbox, standins, link_timeout)

    async def page(_: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "phone.html", headers={"Cache-Control": "no-store"})

    async def citizens(_: web.Request) -> web.Response:
        found = await asyncio.to_thread(demo_citizens, engine, catalogue, today())
        return web.json_response({"label": LABEL, "citizens": found, "channels": CHANNELS})

    async def send(request: web.Request) -> web.Response:
        body = await _json(request)
        person = await sim.person(_int(body.get("citizen_id"), "citizen_id"))
        channel = _channel(body.get("channel"))
        if body.get("button") is not None:
            entry, choice = sim.find_choice(person, channel, body["button"])
            sent = await sim.send(person, channel, pressed=(entry, choice))
        else:
            text = body.get("text")
            if not isinstance(text, str):
                raise SimulatorError(400, "Cần gửi text hoặc button.")
            sent = await sim.send(person, channel, text[:4000])
        return web.json_response({"status": "sent", "message": sent.as_json()})

    async def link(request: web.Request) -> web.Response:
        body = await _json(request)
        person = await sim.person(_int(body.get("citizen_id"), "citizen_id"))
        return web.json_response(await sim.link(person, _channel(body.get("channel"))))

    async def messages(request: web.Request) -> web.Response:
        person = await sim.person(_int(request.query.get("citizen_id"), "citizen_id"))
        channel = _channel(request.query.get("channel"))
        after = _int(request.query.get("after", "0"), "after")
        entries = inbox.entries(person.conversations(channel), after)
        return web.json_response({"messages": [e.as_json() for e in entries], "last": inbox.last})

    async def run_day(request: web.Request) -> web.Response:
        body = await _json(request)
        try:
            day = dt.date.fromisoformat(str(body.get("date")))
        except ValueError as exc:
            raise SimulatorError(400, "Ngày phải có dạng YYYY-MM-DD.") from exc
        return web.json_response(await sim.run_day(day))

    async def image(request: web.Request) -> web.Response:
        found = inbox.image(request.match_info["ident"])
        if found is None:
            raise web.HTTPNotFound()
        data, content_type = found
        return web.Response(body=data, content_type=content_type)

    app = web.Application(middlewares=[_local_only(port)], client_max_size=2 * MAX_IMAGE_BYTES)
    standins.install(app)
    app.router.add_get("/", page)
    app.router.add_get("/sim/citizens", citizens)
    app.router.add_post("/sim/send", send)
    app.router.add_post("/sim/link", link)
    app.router.add_get("/sim/messages", messages)
    app.router.add_post("/sim/run-day", run_day)
    app.router.add_get("/sim/image/{ident}", image)
    app.router.add_static("/static/", STATIC, append_version=False)
    # aiohttp 3.9 declares its signals for aiosignal < 1.4 (see console/__main__.py).
    cleanup = cast("MutableSequence[Callable[[web.Application], Awaitable[None]]]", app.on_cleanup)
    cleanup.append(sim.close)
    return app
