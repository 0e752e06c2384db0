"""Telegram channel on python-telegram-bot 22 (output only; Rasa's aiogram channel is not used).

Webhook `POST /webhooks/telegram/webhook`: the `X-Telegram-Bot-Api-Secret-Token` header must
match TELEGRAM_WEBHOOK_SECRET (403 otherwise); the update is acknowledged at once and handled
in the background. Buttons become inline keyboards whose callback_data is a short id (Telegram
allows 64 bytes, a Vietnamese payload easily takes more); a `/share_contact` button becomes a
"share my phone" reply-keyboard button, and a shared contact that is the sender's own is passed
to Rasa as `/link_account` with the phone sealed as a verified fact
(`bot.identity.speaker.seal`): the only way a phone number reaches the actions as proven. One
chat gets at most INBOUND_RATE_PER_MINUTE messages (`bot.identity.ratelimit`), told once when it
goes over.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rasa.core.channels.channel import UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from sqlalchemy.engine import Engine
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    Update,
)
from telegram.error import BadRequest, Forbidden, InvalidToken, RetryAfter, TelegramError
from telegram.request import HTTPXRequest

from bot.delivery.channel_state import (
    first_time,
    native_id,
    payload_for,
    remember_payloads,
    sender_id,
)
from bot.delivery.sending import SendError, with_retries
from bot.identity.speaker import ENVELOPE, VERIFIED_PHONE, seal
from bot.vietnamese.text import clean_text
from bot.vietnamese.vn import InvalidValue, normalize_phone
from connectors import common
from connectors.channel import ApiChannelInput, ChannelOutput

logger = logging.getLogger(__name__)

NAME = "telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
SHARE_CONTACT = "/share_contact"
MAX_TEXT = 4096
CALLBACK_PREFIX = "b:"
BUTTON_ID = re.compile(r"[A-Za-z0-9_-]{1,24}")  # what channel_state.button_id produces
NOT_OWN_CONTACT = (
    "Vì lý do bảo mật, Ông/Bà vui lòng chia sẻ số điện thoại của chính mình "
    "bằng nút «Chia sẻ số điện thoại»."
)
BAD_PHONE = "Số điện thoại được chia sẻ không phải số điện thoại Việt Nam hợp lệ."
MORE_CHOICES = "Hoặc Ông/Bà chọn:"


@dataclass(frozen=True)
class TelegramConfig:
    token: str
    secret: str
    api_url: str = "https://api.telegram.org"
    webhook_url: str | None = None
    timeout: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> TelegramConfig | None:
        missing = [k for k in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET") if not env.get(k)]
        if missing:
            common.log_disabled(NAME, missing)
            return None
        return cls(
            token=env["TELEGRAM_BOT_TOKEN"],
            secret=env["TELEGRAM_WEBHOOK_SECRET"],
            api_url=env.get("TELEGRAM_API_URL", cls.api_url).rstrip("/"),
            webhook_url=env.get("TELEGRAM_WEBHOOK_URL"),
            timeout=float(env.get("TELEGRAM_TIMEOUT", cls.timeout)),
        )


class TelegramApi:
    """A PTB `Bot` pointed at the configured Bot API server, with its HTTP clients owned here."""

    def __init__(self, config: TelegramConfig) -> None:
        t = config.timeout
        self._requests = [
            HTTPXRequest(connection_pool_size=64, read_timeout=t, write_timeout=t, pool_timeout=t)
            for _ in range(2)
        ]
        self.bot = Bot(
            config.token,
            base_url=f"{config.api_url}/bot",
            request=self._requests[0],
            get_updates_request=self._requests[1],
        )

    async def call(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        """Run one Bot API call, turning PTB's errors into SendErrors."""
        try:
            return await fn()
        except RetryAfter as exc:
            retry_after = exc.retry_after
            seconds = retry_after.total_seconds() if hasattr(retry_after, "total_seconds") else 1
            raise SendError(NAME, "retry", "flood limit", 429, float(seconds)) from exc
        except Forbidden as exc:  # the user blocked the bot
            raise SendError(NAME, "permanent", str(exc)[:120], 403) from exc
        except (BadRequest, InvalidToken) as exc:
            raise SendError(NAME, "permanent", str(exc)[:120], 400) from exc
        except TelegramError as exc:  # NetworkError, TimedOut: 5xx and timeouts
            raise SendError(NAME, "retry", f"{type(exc).__name__}: {str(exc)[:120]}") from exc

    async def send_text(self, chat_id: str, text: str, reply_markup: Any = None) -> str:
        message = await self.call(
            lambda: self.bot.send_message(chat_id, text, reply_markup=reply_markup)
        )
        return str(message.message_id)

    async def close(self) -> None:
        for request in self._requests:
            await request.shutdown()


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Cut at paragraph or line ends so each part fits one Telegram message."""
    parts: list[str] = []
    while len(text) > limit:
        cut = max(text.rfind("\n", 0, limit), text.rfind(" ", 0, limit))
        cut = cut if cut > limit // 2 else limit
        parts.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    return [*parts, text] if text or not parts else parts


class TelegramOutput(ChannelOutput):
    NAME = NAME

    def __init__(self, api: TelegramApi, engine: Engine) -> None:
        self.api, self.engine = api, engine

    async def _send(self, recipient_id: str, text: str, markup: Any = None) -> None:
        chat = native_id(recipient_id)
        for part in split_text(text):
            await with_retries(functools.partial(self.api.send_text, chat, part, markup))

    async def send_text_with_buttons(
        self, recipient_id: str, text: str, buttons: list[dict[str, Any]], **kwargs: Any
    ) -> None:
        contact = [b for b in buttons if b.get("payload") == SHARE_CONTACT]
        others = [b for b in buttons if b.get("payload") != SHARE_CONTACT]
        if contact:
            keyboard = ReplyKeyboardMarkup(
                [
                    [
                        KeyboardButton(
                            contact[0].get("title", "Chia sẻ số điện thoại"), request_contact=True
                        )
                    ]
                ],
                resize_keyboard=True,
                one_time_keyboard=True,
            )
            await self._send(recipient_id, text, keyboard)
            if not others:
                return
            text = MORE_CHOICES
        await self._send(recipient_id, text, await self._inline_keyboard(others))

    async def _inline_keyboard(self, buttons: list[dict[str, Any]]) -> InlineKeyboardMarkup:
        payloads = [
            str(b.get("payload") or b.get("title", "")) for b in buttons if not b.get("url")
        ]
        ids = iter(await asyncio.to_thread(remember_payloads, self.engine, payloads))
        rows = []
        for b in buttons:
            title = str(b.get("title", ""))[:64] or "…"
            if b.get("url"):
                rows.append([InlineKeyboardButton(title, url=b["url"])])
            else:
                rows.append(
                    [InlineKeyboardButton(title, callback_data=CALLBACK_PREFIX + next(ids))]
                )
        return InlineKeyboardMarkup(rows)

    async def send_image_url(self, recipient_id: str, image: str, **kwargs: Any) -> None:
        """A data URL (the VietQR code) is uploaded as a photo, an http(s) URL is passed on for
        Telegram to fetch. A malformed image is left out with a warning: the text of the same
        answer already says everything the picture shows, so the turn goes on."""
        try:
            data = common.image_bytes(image)
        except ValueError as exc:
            logger.warning(
                "telegram image to %s not sent: %s", common.mask_sender(recipient_id), exc
            )
            return
        chat = native_id(recipient_id)
        if data is None:
            send = functools.partial(self.api.bot.send_photo, chat, image)
        else:
            suffix = "jpg" if data.startswith(common.IMAGE_SIGNATURES["image/jpeg"]) else "png"
            send = functools.partial(
                self.api.bot.send_photo, chat, data, filename=f"image.{suffix}"
            )
        await with_retries(lambda: self.api.call(send))


@dataclass
class Inbound:
    """What one update means for us: a text for Rasa, a fixed answer, or nothing."""

    chat_id: int | None = None
    text: str | None = None
    facts: dict[str, str] = field(default_factory=dict)  # proven by Telegram, sealed in handle
    answer: str | None = None
    callback_query_id: str | None = None
    button_id: str | None = None
    reason: str = ""


class Malformed(ValueError):
    """An update whose fields do not have the types of the Bot API."""


def _chat_id(value: Any) -> int:
    """Chat ids are 64-bit integers; anything else means the update is malformed."""
    if isinstance(value, bool) or not isinstance(value, int) or not -(2**63) <= value < 2**63:
        raise Malformed("chat id is not a 64-bit integer")
    return value


def _text(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise Malformed("text is not a string")
    return clean_text(value) if value else None


def interpret(update: Update) -> Inbound:
    """Map an update to what should happen, without I/O (private chats only).

    Raises Malformed (or the TypeError/AttributeError of a field of the wrong type) for an
    update that does not follow the Bot API.
    """
    if update.callback_query is not None:
        query = update.callback_query
        message = query.message
        chat_id = _chat_id(message.chat.id if message is not None else query.from_user.id)
        if not isinstance(query.id, str) or not query.id.isprintable():
            raise Malformed("callback query id is not a string")
        data = _text(query.data) or ""
        ident = data[len(CALLBACK_PREFIX) :] if data.startswith(CALLBACK_PREFIX) else ""
        button = ident if BUTTON_ID.fullmatch(ident) else None
        return Inbound(chat_id, callback_query_id=query.id, button_id=button, reason="button")
    if update.edited_message is not None:
        chat_id = _chat_id(update.edited_message.chat.id)
        return Inbound(chat_id, answer=common.EDITED, reason="edited")
    message = update.message
    if message is None:
        return Inbound(reason="update type not handled")
    if message.chat.type != "private":
        return Inbound(reason="not a private chat")
    chat_id = _chat_id(message.chat.id)
    if message.contact is not None:
        own = message.from_user is not None and message.contact.user_id == message.from_user.id
        if not own:
            return Inbound(chat_id, answer=NOT_OWN_CONTACT, reason="contact of someone else")
        try:
            phone = normalize_phone(message.contact.phone_number)
        except InvalidValue:
            return Inbound(chat_id, answer=BAD_PHONE, reason="shared phone not Vietnamese")
        return Inbound(chat_id, "/link_account", {VERIFIED_PHONE: phone}, reason="own contact")
    text = _text(message.text)
    if text:
        text = text.strip()
        if text.split("@")[0] == "/start":
            text = "/greet"
        return Inbound(chat_id, common.clip(text), reason="text")
    return Inbound(chat_id, answer=common.TEXT_ONLY, reason="not text")


class TelegramInput(ApiChannelInput[TelegramConfig, TelegramApi]):
    NAME = NAME
    config_type = TelegramConfig

    def _connect(self, config: TelegramConfig) -> TelegramApi:
        return TelegramApi(config)

    def _output(self) -> TelegramOutput:
        return TelegramOutput(self.api, self.engine)

    async def handle(self, data: dict[str, Any], on_new_message: common.OnNewMessage) -> None:
        """Handle one update (already authenticated and deduplicated)."""
        try:
            update = Update.de_json(data, self.api.bot)
            inbound = interpret(update)
        except (TypeError, KeyError, ValueError, AttributeError, OverflowError) as exc:
            # ValueError includes Malformed; OverflowError: a date out of range
            logger.warning("telegram update ignored: malformed (%s)", type(exc).__name__)
            return
        if inbound.chat_id is None:
            logger.debug("telegram update ignored: %s", inbound.reason)
            return
        sender = sender_id(NAME, inbound.chat_id)
        output = self._output()
        if not await self.admit(sender, output):
            return
        if inbound.callback_query_id is not None:
            qid = inbound.callback_query_id
            try:  # stops the spinner on the button; the choice still counts if this fails
                await self.api.call(lambda: self.api.bot.answer_callback_query(qid))
            except SendError as exc:
                logger.warning("telegram answerCallbackQuery failed: %s", exc.reason)
            payload = (
                await asyncio.to_thread(payload_for, self.engine, inbound.button_id)
                if inbound.button_id
                else None
            )
            if payload is None:
                inbound.answer = common.EXPIRED_CHOICE
            inbound.text = payload
        if inbound.answer:
            logger.info(
                "telegram %s answered politely: %s", common.mask_sender(sender), inbound.reason
            )
            await output.send_text_message(sender, inbound.answer)
            return
        await on_new_message(
            UserMessage(
                inbound.text,
                output,
                sender,
                input_channel=NAME,
                metadata={ENVELOPE: seal(NAME, sender, inbound.facts)} if inbound.facts else None,
            )
        )

    async def _try_again(self, data: dict[str, Any]) -> None:
        """Processing failed after the 200 (Telegram will not resend): ask the citizen to."""
        try:
            chat_id = interpret(Update.de_json(data, self.api.bot)).chat_id
        except (TypeError, KeyError, ValueError, AttributeError, OverflowError):
            return
        if chat_id is not None:
            await self.api.send_text(str(chat_id), common.TRY_AGAIN)

    def blueprint(self, on_new_message: common.OnNewMessage) -> Blueprint:
        if self.config is None:
            return common.disabled_blueprint(NAME, "TELEGRAM_BOT_TOKEN/SECRET not set")
        secret = self.config.secret

        async def receive(request: Request) -> HTTPResponse:
            if not common.secrets_equal(request.headers.get(SECRET_HEADER), secret):
                return common.reject(NAME, 403, "missing or wrong secret token")
            data = common.json_body(request, NAME)
            if isinstance(data, HTTPResponse):
                return data
            update_id = data.get("update_id")
            if isinstance(update_id, bool) or not isinstance(update_id, int):
                return common.reject(NAME, 400, "no update_id")
            if not await asyncio.to_thread(first_time, self.engine, NAME, str(update_id)):
                logger.info("telegram update %d already handled (retry)", update_id)
                return response.json({"ok": True, "duplicate": True})
            common.spawn(
                self.handle(data, on_new_message),
                f"telegram update {update_id}",
                on_failure=lambda _: self._try_again(data),
            )
            return response.json({"ok": True})

        return self.webhook_blueprint(__name__, receive)
