"""Zalo Official Account channel.

Webhook `POST /webhooks/zalo/webhook`: the `X-ZEvent-Signature` must match (401 otherwise) and
the event must be under ZALO_MAX_EVENT_AGE seconds old (replays are refused); Zalo wants an
answer within 2 seconds, so the event is acknowledged at once and handled in the background.
Retried events are dropped by `msg_id`. Replies go out as customer-service messages (with the
user's msg_id, so they count as replies); buttons become `oa.query.hide` buttons whose payload
is a short id that comes back as the user's text. One user gets at most INBOUND_RATE_PER_MINUTE
messages (`bot.identity.ratelimit`), told once when they go over.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from typing import Any

from rasa.core.channels.channel import UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from sqlalchemy.engine import Engine

from bot.core.db import unit_of_work
from bot.delivery import channel_state as state
from bot.delivery.sending import with_retries
from bot.identity.linking import bound_citizen
from bot.service.satisfaction import rating_from_template
from bot.vietnamese.text import clean_text
from connectors import common
from connectors.channel import ApiChannelInput, ChannelOutput
from connectors.zalo_api import MAX_TEXT, ZaloApi, ZaloConfig, ZaloTokenStore, signature_ok

logger = logging.getLogger(__name__)

NAME = "zalo"
SIGNATURE_HEADER = "X-ZEvent-Signature"
BUTTON_PREFIX = "#b:"
# The event of a rating given on the OA's 1–5 star template: `message` carries `msg_id`,
# `rate`, `note` and the `tracking_id` we sent the template with (docs/security.md).
FEEDBACK_EVENT = "user_feedback"
MAX_BUTTONS = 5
TIMESTAMP = re.compile(r"[0-9]{1,16}")  # milliseconds since 1970, as Zalo writes it
IDENT = re.compile(r"[0-9A-Za-z_.:-]{1,128}")  # user ids and msg_ids


def _ident(value: Any, limit: int) -> str | None:
    """A Zalo id (string or integer of at most `limit` plain ASCII characters), else None."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    text = str(value)
    return text if len(text) <= limit and IDENT.fullmatch(text) else None


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    return [text[i : i + limit] for i in range(0, len(text), limit)] or [""]


class ZaloOutput(ChannelOutput):
    NAME = NAME

    def __init__(self, api: ZaloApi, engine: Engine, reply_to: str | None = None) -> None:
        self.api, self.engine, self.reply_to = api, engine, reply_to

    async def _send(self, recipient_id: str, text: str, buttons: Any = None) -> None:
        user = state.native_id(recipient_id)
        parts = split_text(text)
        for i, part in enumerate(parts):
            extra = buttons if i == len(parts) - 1 else None
            await with_retries(
                functools.partial(self.api.send_text, user, part, extra, self.reply_to)
            )

    async def send_text_with_buttons(
        self, recipient_id: str, text: str, buttons: list[dict[str, Any]], **kwargs: Any
    ) -> None:
        shown = buttons[:MAX_BUTTONS]
        links = [b for b in shown if b.get("url")]
        payloads = [str(b.get("payload") or b.get("title", "")) for b in shown if not b.get("url")]
        ids = iter(await asyncio.to_thread(state.remember_payloads, self.engine, payloads))
        rendered = []
        for b in shown:
            title = str(b.get("title", ""))[:100]
            if b in links:
                rendered.append(
                    {"title": title, "type": "oa.open.url", "payload": {"url": b["url"]}}
                )
            else:
                payload = BUTTON_PREFIX + next(ids)
                rendered.append({"title": title, "type": "oa.query.hide", "payload": payload})
        await self._send(recipient_id, text, rendered)

    async def send_image_url(self, recipient_id: str, image: str, **kwargs: Any) -> None:
        """A data URL (the VietQR code) is uploaded, then shown by its attachment_id; an http(s)
        URL is shown by Zalo fetching it. The image string is never sent as text (a data URL
        would arrive as a wall of base64). A malformed image is left out with a warning: the
        text of the same answer already says everything the picture shows."""
        try:
            data = common.image_bytes(image)
        except ValueError as exc:
            logger.warning("zalo image to %s not sent: %s", common.mask_sender(recipient_id), exc)
            return
        user = state.native_id(recipient_id)
        if data is None:
            send = functools.partial(self.api.send_image, user, url=image, reply_to=self.reply_to)
        else:
            attachment_id = await with_retries(functools.partial(self.api.upload_image, data))
            send = functools.partial(self.api.send_image, user, attachment_id, None, self.reply_to)
        await with_retries(send)


class ZaloInput(ApiChannelInput[ZaloConfig, ZaloApi]):
    NAME = NAME
    config_type = ZaloConfig

    def _connect(self, config: ZaloConfig) -> ZaloApi:
        return ZaloApi(config, ZaloTokenStore(self.engine, config))

    def _output(self) -> ZaloOutput:
        return ZaloOutput(self.api, self.engine)

    async def handle(self, event: dict[str, Any], on_new_message: common.OnNewMessage) -> None:
        """Handle one authenticated, first-seen `user_send_*` event (`receive` checked that
        `sender` and `message` are objects with valid ids)."""
        user = str(event["sender"]["id"])
        message = event["message"]
        msg_id = str(message["msg_id"])
        sender = state.sender_id(NAME, user)
        output = ZaloOutput(self.api, self.engine, reply_to=msg_id)
        if not await self.admit(sender, output):
            return
        text = message.get("text") if event.get("event_name") == "user_send_text" else None
        if not isinstance(text, str) or not text.strip():
            logger.info(
                "zalo %s sent %s: answered politely",
                common.mask_sender(sender),
                event.get("event_name"),
            )
            await output.send_text_message(sender, common.TEXT_ONLY)
            return
        text = common.clip(clean_text(text).strip())
        if text.startswith(BUTTON_PREFIX):
            payload = await asyncio.to_thread(
                state.payload_for, self.engine, text[len(BUTTON_PREFIX) :]
            )
            if payload is None:
                await output.send_text_message(sender, common.EXPIRED_CHOICE)
                return
            text = payload
        await on_new_message(
            UserMessage(
                text,
                output,
                sender,
                input_channel=NAME,
                message_id=msg_id,
                metadata={"zalo_msg_id": msg_id},
            )
        )

    async def feedback(self, event: dict[str, Any]) -> str:
        """A rating given on the OA's 1–5 star template (an authenticated event): recorded for
        the citizen bound to the sending Zalo user, for the dossier the template's tracking id
        names, and only if that dossier is theirs (`rating_from_template`)."""
        sender, message = event.get("sender"), event.get("message")
        if not isinstance(sender, dict) or not isinstance(message, dict):
            return "ignored"
        user, msg_id = _ident(sender.get("id"), 64), _ident(message.get("msg_id"), 128)
        tracking = message.get("tracking_id")
        if user is None or msg_id is None or not isinstance(tracking, str):
            return "ignored"
        if not await asyncio.to_thread(state.first_time, self.engine, NAME, f"rate:{msg_id}"):
            return "duplicate"

        def record() -> bool:
            with unit_of_work(self.engine) as session:
                citizen = bound_citizen(session, NAME, state.sender_id(NAME, user))
                row = rating_from_template(
                    session,
                    citizen.id if citizen else None,
                    tracking[:80],
                    message.get("rate"),
                    message.get("note"),
                )
                return row is not None

        return "recorded" if await asyncio.to_thread(record) else "ignored"

    def _authenticate(self, request: Request, event: dict[str, Any]) -> HTTPResponse | None:
        assert self.config is not None
        header = request.headers.get(SIGNATURE_HEADER)
        if not header:
            return common.reject(NAME, 401, "missing signature")
        timestamp = event.get("timestamp")  # checked first: it is part of the signed data
        if isinstance(timestamp, bool) or not isinstance(timestamp, (str, int)):
            return common.reject(NAME, 400, "timestamp is not a number")
        timestamp = str(timestamp)
        if not TIMESTAMP.fullmatch(timestamp):
            return common.reject(NAME, 400, "timestamp is not a number")
        if not signature_ok(self.config, request.body, timestamp, header):
            return common.reject(NAME, 401, "bad signature")
        app_id = event.get("app_id")
        if not isinstance(app_id, (str, int)) or str(app_id) != self.config.app_id:
            return common.reject(NAME, 403, "event for another app")
        age = time.time() - int(timestamp) / 1000
        if abs(age) > self.config.max_event_age:
            return common.reject(NAME, 401, f"stale event ({int(age)} s old)")
        return None

    def blueprint(self, on_new_message: common.OnNewMessage) -> Blueprint:
        if self.config is None:
            return common.disabled_blueprint(NAME, "ZALO_APP_ID/APP_SECRET/OA_SECRET not set")

        async def receive(request: Request) -> HTTPResponse:
            event = common.json_body(request, NAME)
            if isinstance(event, HTTPResponse):
                return event
            if (refused := self._authenticate(request, event)) is not None:
                return refused
            name = event.get("event_name")
            if not isinstance(name, str):
                return common.reject(NAME, 400, "event_name is not a string")
            if name == FEEDBACK_EVENT:
                return response.json({"status": await self.feedback(event)})
            if not name.startswith("user_send_"):
                logger.debug("zalo event %s ignored", clean_text(name[:40]))
                return response.json({"status": "ignored"})
            message, sender = event.get("message"), event.get("sender")
            if not isinstance(message, dict) or not isinstance(sender, dict):
                return common.reject(NAME, 400, "message event without message or sender")
            msg_id = _ident(message.get("msg_id"), 128)
            if msg_id is None or _ident(sender.get("id"), 64) is None:
                return common.reject(NAME, 400, "message event without msg_id or sender id")
            if not await asyncio.to_thread(state.first_time, self.engine, NAME, msg_id):
                logger.info("zalo message %s already handled (retry)", msg_id[:40])
                return response.json({"status": "duplicate"})
            output = ZaloOutput(self.api, self.engine, reply_to=msg_id)
            recipient = state.sender_id(NAME, str(sender["id"]))
            common.spawn(
                self.handle(event, on_new_message),
                f"zalo event {clean_text(name[:40])}",
                on_failure=lambda _: output.send_text_message(recipient, common.TRY_AGAIN),
            )
            return response.json({"status": "ok"})

        return self.webhook_blueprint(__name__, receive)
