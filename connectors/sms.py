"""SMS channel: replies and proactive messages through the configured gateway (`bot.sms`), and
inbound SMS from a two-way number or short code on `/webhooks/sms/webhook`.

Inbound calls (GET as eSMS sends its MO short-code calls, or POST with JSON or a form) must carry
the shared secret SMS_WEBHOOK_SECRET, in the `X-Webhook-Secret` header or a `secret` parameter
(gateways that only call a fixed URL put it in the URL). Fields: `from`/`sender`/`phone`,
`text`/`content`/`message`, and an id `id`/`smsid`/`message_id` used to drop retries. A reply
"1", "2", … is mapped to the payloads of the last buttons sent to that number. Outgoing text is
unaccented and fits SMS_MAX_SEGMENTS GSM segments (default 1).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.headers import parse_content_header
from sanic.request import Request, parse_multipart_form
from sanic.response import HTTPResponse
from sqlalchemy.engine import Engine

from bot.channel_state import (
    choice_payload,
    first_time,
    native_id,
    sender_id,
    set_last_buttons,
    touch_activity,
)
from bot.db import get_engine
from bot.sending import with_retries
from bot.sms import SmsGateway, default_gateway, to_sms_text, to_sms_with_choices
from bot.text import clean_text
from bot.vn import InvalidValue, normalize_phone
from connectors import common

logger = logging.getLogger(__name__)

NAME = "sms"
SECRET_HEADER = "X-Webhook-Secret"
_FROM = ("from", "sender", "phone")
_TEXT = ("text", "content", "message")
_ID = ("id", "smsid", "message_id")


def _first(fields: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    """The first of `names` that holds a string or a number (a form field's first value)."""
    for name in names:
        value = fields.get(name)
        if isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            continue
        if value != "":
            return str(value)
    return None


def _form(request: Request) -> dict[str, list[str]] | None:
    """The fields of a urlencoded or multipart form body (none for other content types), or
    None when the body cannot be read as one (not UTF-8, broken multipart)."""
    content_type, params = parse_content_header(request.content_type or "")
    try:
        if content_type == "application/x-www-form-urlencoded":
            return parse_qs(request.body.decode("utf-8"), keep_blank_values=True)
        if content_type == "multipart/form-data":
            boundary = str(params.get("boundary") or "").encode("utf-8", "surrogateescape")
            fields, _files = parse_multipart_form(request.body, boundary)
            return dict(fields)
    except (ValueError, LookupError):  # UnicodeDecodeError, no ":" or empty boundary; charset
        return None
    return {}


class SmsOutput(OutputChannel):
    @classmethod
    def name(cls) -> str:
        return NAME

    def __init__(self, gateway: SmsGateway, engine: Engine, max_segments: int = 1) -> None:
        self.gateway, self.engine, self.max_segments = gateway, engine, max_segments

    async def _send(self, recipient_id: str, text: str) -> None:
        phone = native_id(recipient_id)
        await with_retries(lambda: asyncio.to_thread(self.gateway.send, phone, text))

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        await self._send(recipient_id, to_sms_text(text, self.max_segments))

    async def send_text_with_buttons(
        self, recipient_id: str, text: str, buttons: list[dict[str, Any]], **kwargs: Any
    ) -> None:
        buttons = [b for b in buttons if b.get("payload") and not b.get("url")][:9]
        await asyncio.to_thread(
            set_last_buttons, self.engine, recipient_id, [str(b["payload"]) for b in buttons]
        )
        titles = [str(b.get("title", "")) for b in buttons]
        await self._send(recipient_id, to_sms_with_choices(text, titles, self.max_segments))

    async def send_image_url(self, recipient_id: str, image: str, **kwargs: Any) -> None:
        logger.debug("sms cannot carry images; skipped")

    async def send_custom_json(
        self, recipient_id: str, json_message: dict[str, Any], **kwargs: Any
    ) -> None:
        if json_message.get("text"):
            await self.send_text_message(recipient_id, str(json_message["text"]))


class SmsInput(InputChannel):
    @classmethod
    def name(cls) -> str:
        return NAME

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> SmsInput:
        secret = os.environ.get("SMS_WEBHOOK_SECRET")
        if not secret:
            logger.info(
                "sms channel: inbound webhook disabled (set SMS_WEBHOOK_SECRET); "
                "outgoing SMS via %s",
                os.environ.get("SMS_PROVIDER", "outbox"),
            )
        return cls(secret, max_segments=int(os.environ.get("SMS_MAX_SEGMENTS", "1")))

    def __init__(
        self,
        secret: str | None,
        gateway: SmsGateway | None = None,
        engine: Engine | None = None,
        max_segments: int = 1,
    ) -> None:
        self.secret, self._gateway, self._engine = secret, gateway, engine
        self.max_segments = max_segments

    @property
    def engine(self) -> Engine:
        return self._engine or get_engine()

    @property
    def gateway(self) -> SmsGateway:
        if self._gateway is None:
            self._gateway = default_gateway()
        return self._gateway

    def get_output_channel(self) -> OutputChannel:
        """Always available: proactive SMS need no inbound webhook."""
        return SmsOutput(self.gateway, self.engine, self.max_segments)

    async def handle(
        self, phone: str, text: str, on_new_message: common.OnNewMessage, message_id: str
    ) -> None:
        sender = sender_id(NAME, phone)
        await asyncio.to_thread(touch_activity, self.engine, sender, NAME)
        text = common.clip(clean_text(text).strip())
        payload = await asyncio.to_thread(choice_payload, self.engine, sender, text)
        await on_new_message(
            UserMessage(
                payload or text,
                self.get_output_channel(),
                sender,
                input_channel=NAME,
                message_id=message_id,
            )
        )

    def blueprint(self, on_new_message: common.OnNewMessage) -> Blueprint:
        if not self.secret:
            return common.disabled_blueprint(NAME, "SMS_WEBHOOK_SECRET not set")
        bp = Blueprint("sms_webhook", __name__)
        secret = self.secret

        @bp.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @bp.route("/webhook", methods=["GET", "POST"])
        @common.db_outage_503(NAME)
        async def receive(request: Request) -> HTTPResponse:
            if (refused := common.too_large(request, NAME)) is not None:
                return refused
            given = request.headers.get(SECRET_HEADER) or request.args.get("secret")
            if not given:
                return common.reject(NAME, 401, "missing shared secret")
            if not common.secrets_equal(given, secret):
                return common.reject(NAME, 403, "wrong shared secret")
            fields: dict[str, Any] = dict(request.args)
            if request.method == "POST":
                if "json" in (request.content_type or ""):
                    data = common.json_body(request, NAME)
                    if isinstance(data, HTTPResponse):
                        return data
                    fields.update(data)
                else:
                    form = _form(request)
                    if form is None:
                        return common.reject(NAME, 400, "form body cannot be read")
                    fields.update(form)
            raw_phone, text, message_id = (
                _first(fields, _FROM),
                _first(fields, _TEXT),
                _first(fields, _ID),
            )
            if not raw_phone or text is None or not message_id:
                return common.reject(NAME, 400, "needs sender, text and message id")
            if len(message_id) > 128 or not message_id.isprintable():
                return common.reject(NAME, 400, "message id is not a short printable text")
            try:
                phone = normalize_phone(raw_phone)
            except InvalidValue:
                return common.reject(NAME, 400, "sender is not a Vietnamese phone number")
            if not await asyncio.to_thread(first_time, self.engine, NAME, message_id):
                logger.info("sms %s already handled (retry)", message_id[:40])
                return response.json({"status": "duplicate"})
            common.spawn(
                self.handle(phone, text, on_new_message, message_id),
                f"sms from {common.mask_sender(phone)}",
                on_failure=lambda _: self.get_output_channel().send_text_message(
                    sender_id(NAME, phone), common.TRY_AGAIN
                ),
            )
            return response.json({"status": "ok"})

        return bp
