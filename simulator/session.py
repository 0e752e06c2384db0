"""What a simulated phone does: send as the provider would, link by the real one-time code,
read the conversation, and run a simulated day through the real scan and delivery."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import logging
import os
from collections.abc import Mapping
from typing import Any

import httpx
from aiohttp import web
from sqlalchemy.engine import Engine

from bot.catalogue.model import Catalogue
from bot.core.clock import local_to_stored
from bot.core.db import unit_of_work
from bot.core.models import Citizen
from connectors.senders import open_deliverer
from scheduler.dispatch import DispatchConfig, dispatch
from scheduler.notices import send_payment_notices, send_status_notices
from scheduler.scan import scan
from simulator.people import (
    ALL_DAY,
    DELIVERY_TIME,
    LINK_TIMEOUT,
    MAX_ROUNDS,
    NO_CODE_GRACE,
    OTP,
    TELEGRAM_SECRET_HEADER,
    Ids,
    Person,
    Pressed,
    SimulatorError,
    sms_webhook,
    telegram_chat_id,
    telegram_update,
    zalo_text_webhook,
)
from simulator.standins import (
    Choice,
    Entry,
    Inbox,
    StandinConfig,
    StandIns,
)

logger = logging.getLogger(__name__)


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
