"""Channel senders for `bot.delivery.deliverer`, built from the same environment as the channels.

An intent notice goes into the conversation through Rasa (`trigger_intent` with
`output_channel=<channel>`), so the answer is the dialogue's own and the tracker knows it was
said; the channel's output then raises a `SendError` whose marker survives Rasa's HTTP 500, so
the pipeline still knows whether to retry. A text notice goes straight to the channel's API.
Rasa itself unreachable, or answering that its action server or tracker store is down, is a
`ServiceUnavailable`: the delivery waits for it rather than falling back to another channel
(which would go through the same Rasa server).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, cast
from urllib.parse import quote

import httpx
from sqlalchemy.engine import Engine

from bot.core.clock import local_to_stored, to_local, utcnow
from bot.core.config import rasa_auth_token
from bot.core.db import get_engine, unit_of_work
from bot.delivery import outbox
from bot.delivery.channel_state import native_id
from bot.delivery.deliverer import (
    ChannelSender,
    Deliverer,
    DeliveryConfig,
    Notice,
    Route,
    ServiceUnavailable,
)
from bot.delivery.mailer import Mailer
from bot.delivery.sending import SendError, http_kind
from bot.delivery.sms import SmsGateway, to_sms_text
from connectors.common import SERVICE_UNAVAILABLE
from connectors.sms_providers import default_gateway
from connectors.smtp import default_mailer
from connectors.telegram import TelegramApi, TelegramConfig, split_text
from connectors.zalo_api import ZaloApi, ZaloConfig, ZaloTokenStore

logger = logging.getLogger(__name__)
DirectSend = Callable[[str, str, str], Awaitable[str | None]]  # (native id, text, key)


class RasaTrigger:
    """`POST /conversations/{id}/trigger_intent?output_channel=<channel>` on the Rasa server."""

    def __init__(self, url: str, token: str | None, timeout: float = 30.0) -> None:
        self.url, self.token = url.rstrip("/"), token
        # A new connection per trigger: a Rasa server that is being restarted (SIGTERM) keeps
        # serving requests on open keep-alive connections until its graceful timeout (15 s)
        # and then aborts them mid-turn, after the channel may have sent the reminder (which
        # would then be sent again). Without keep-alive it refuses new triggers at once (they
        # wait for it) and completes those in flight.
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=0)
        self.client = httpx.AsyncClient(timeout=timeout, limits=limits)

    async def trigger(
        self, conversation: str, channel: str, intent: str, entities: Mapping[str, Any]
    ) -> None:
        params = {"output_channel": channel, "include_events": "NONE"}
        if self.token:
            params["token"] = self.token
        url = f"{self.url}/conversations/{quote(conversation, safe=':')}/trigger_intent"
        try:
            answer = await self.client.post(
                url, params=params, json={"name": intent, "entities": dict(entities)}
            )
        except httpx.TimeoutException as exc:
            raise ServiceUnavailable(channel, "rasa timeout") from exc
        except httpx.TransportError as exc:
            raise ServiceUnavailable(channel, f"rasa unreachable: {type(exc).__name__}") from exc
        if answer.status_code >= 300:
            try:
                message = str(answer.json().get("message", ""))
            except ValueError:
                message = answer.text[:300]
            inner = SendError.from_text(message, answer.status_code)
            if inner is not None:
                raise SendError(channel, inner.kind, inner.reason, answer.status_code)
            if SERVICE_UNAVAILABLE in message or answer.status_code in (502, 503, 504):
                start = message.find(SERVICE_UNAVAILABLE)
                reason = message[start:] if start >= 0 else f"rasa answered {answer.status_code}"
                raise ServiceUnavailable(channel, reason[:200], answer.status_code)
            kind = http_kind(answer.status_code)
            raise SendError(channel, kind, message[:200], answer.status_code)
        if "messages" in answer.json():  # Rasa fell back to a collecting channel
            raise SendError(channel, "permanent", f"channel {channel} not enabled on Rasa")

    async def close(self) -> None:
        await self.client.aclose()


class ConversationSender:
    """Intent notices through Rasa into the conversation; text notices directly."""

    def __init__(self, channel: str, rasa: RasaTrigger, direct: DirectSend) -> None:
        self.channel, self.rasa, self.direct = channel, rasa, direct

    async def send(self, route: Route, notice: Notice, key: str) -> str | None:
        if notice.intent:
            await self.rasa.trigger(route.recipient, self.channel, notice.intent, notice.entities)
            return None
        return await self.direct(native_id(route.recipient), notice.text or "", key)


class ZnsSender:
    """A Zalo template message (ZBS; ZNS before 2026), to a follower by user id or else by
    phone. No template for this kind, a rule of `bot.delivery.templates` (tag hours, 400
    characters, the daily quota) or Zalo's out-of-quota answer → the next channel (SMS)."""

    def __init__(self, api: ZaloApi, config: ZaloConfig, engine: Engine) -> None:
        self.api, self.engine = api, engine
        self.templates, self.rules = config.zns_templates, config.template_rules

    async def send(self, route: Route, notice: Notice, key: str) -> str | None:
        template = self.templates.get(notice.template_key)
        if template is None:
            raise SendError("zns", "fallback", f"no ZNS template for {notice.template_key}")
        try:
            data = template.data_for(notice.template_values)
        except KeyError as exc:
            raise SendError("zns", "fallback", f"ZNS value {exc} missing") from exc
        local_now = to_local(utcnow())
        midnight = local_to_stored(local_now.date())
        sent_today = await asyncio.to_thread(self._sent_since, midnight)
        reason = self.rules.refusal(template.tag, template.fixed_chars, data, local_now, sent_today)
        if reason is not None:
            raise SendError("zns", "fallback", reason)
        if route.recipient.startswith("zalo:"):  # an OA follower: by user id, the cheaper way
            user = native_id(route.recipient)
            return await self.api.send_template_to_user(user, template.template_id, data, key)
        return await self.api.send_zns(route.recipient, template.template_id, data, key)

    def _sent_since(self, since: dt.datetime) -> int:
        with unit_of_work(self.engine) as session:
            return outbox.sent_since(session, "zns", since)


class EmailSender:
    def __init__(self, mailer: Mailer) -> None:
        self.mailer = mailer

    async def send(self, route: Route, notice: Notice, key: str) -> str | None:
        subject = notice.subject or "Thông báo từ Trợ lý dịch vụ công"
        # Every notice built for delivery carries its text (scheduler/dispatch.py,
        # scheduler/notices.py, console/channels.py); `Notice.text` is optional for the others.
        body = cast(str, notice.text)
        return await asyncio.to_thread(self.mailer.send, route.recipient, subject, body)


def sms_direct(gateway: SmsGateway, max_segments: int) -> DirectSend:
    async def send(phone: str, text: str, key: str) -> str | None:
        plain = to_sms_text(text, max_segments)
        return await asyncio.to_thread(gateway.send, phone, plain, key)

    return send


def telegram_direct(api: TelegramApi) -> DirectSend:
    async def send(chat: str, text: str, key: str) -> str | None:
        ids = [await api.send_text(chat, part) for part in split_text(text)]
        return ids[-1]

    return send


def zalo_direct(api: ZaloApi) -> DirectSend:
    async def send(user: str, text: str, key: str) -> str | None:
        return await api.send_text(user, text)

    return send


def build_senders(
    engine: Engine,
    env: Mapping[str, str] = os.environ,
    sms_gateway: SmsGateway | None = None,
    mailer: Mailer | None = None,
) -> tuple[dict[str, ChannelSender], frozenset[str], Callable[[], Awaitable[None]]]:
    """Senders for every configured channel, the ZNS template kinds, and a close function."""
    token = env.get("RASA_AUTH_TOKEN") or rasa_auth_token()
    rasa = RasaTrigger(env.get("RASA_URL", "http://127.0.0.1:5005"), token)
    closers: list[Callable[[], Awaitable[None]]] = [rasa.close]
    gateway = sms_gateway or default_gateway()
    segments = int(env.get("SMS_MAX_SEGMENTS", "1"))
    senders: dict[str, ChannelSender] = {
        "sms": ConversationSender("sms", rasa, sms_direct(gateway, segments)),
        "email": EmailSender(mailer or default_mailer(env)),
    }
    kinds: frozenset[str] = frozenset()
    telegram = TelegramConfig.from_env(env)
    if telegram:
        api = TelegramApi(telegram)
        senders["telegram"] = ConversationSender("telegram", rasa, telegram_direct(api))
        closers.append(api.close)
    zalo = ZaloConfig.from_env(env)
    if zalo:
        store = ZaloTokenStore(engine, zalo)
        try:  # read (or renew) the token now rather than inside the first paced send
            store.access_token()
        except SendError as exc:
            logger.warning("zalo token not available yet: %s", exc.reason)
        zalo_api = ZaloApi(zalo, store)
        senders["zalo"] = ConversationSender("zalo", rasa, zalo_direct(zalo_api))
        closers.append(zalo_api.close)
        if zalo.zns_templates:
            senders["zns"] = ZnsSender(zalo_api, zalo, engine)
            kinds = frozenset(zalo.zns_templates)

    async def close() -> None:
        for closer in closers:
            await closer()

    return senders, kinds, close


@asynccontextmanager
async def open_deliverer(
    engine: Engine | None = None, env: Mapping[str, str] = os.environ
) -> AsyncIterator[Deliverer]:
    """A Deliverer with the senders configured in the environment (clients closed after)."""
    engine = engine or get_engine()
    senders, zns_kinds, close = build_senders(engine, env)
    deliverer = Deliverer(engine, senders, DeliveryConfig.from_env(env), zns_kinds)
    try:
        yield deliverer
    finally:
        await deliverer.aclose()
        await close()
