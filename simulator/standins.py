"""Local stand-ins for the providers the channels call: Zalo OA (and its OAuth and template
APIs), the Telegram Bot API and the eSMS gateway, on one aiohttp server of 127.0.0.1.

`local_env(port)` is the environment that points the project's real connectors
(`connectors/zalo_api.py`, `connectors/telegram.py`, `connectors/sms_providers.py`) at the
stand-ins; they then speak exactly the wire formats they speak to the real providers (the same
ones `tests/fakes.py` checks), and every message they send lands in an in-memory `Inbox`, keyed
by (channel, recipient): the Zalo user id, the Telegram chat id, the phone number.

The stand-ins must never replace a real provider: `real_channels_configured(env)` says whether
the environment carries real channel secrets, and the simulator refuses to start then.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import logging
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.core.config import secret
from bot.vietnamese.vn import InvalidValue, normalize_phone

logger = logging.getLogger(__name__)

# Present in a deployment with real channel secrets: any of them set (with a value that is not
# the stand-ins' own, see `real_channels_configured`) keeps the stand-ins from starting.
LOCAL_CHANNEL_VARS = (
    "ZALO_APP_ID",
    "ZALO_APP_SECRET",
    "ZALO_OA_SECRET",
    "TELEGRAM_BOT_TOKEN",
    "SMS_WEBHOOK_SECRET",
    "ESMS_API_KEY",
    "SMS_PROVIDER",
)
SIMULATOR_URL = "SIMULATOR_URL"

ZALO_APP_ID = "1900100100100100"  # a made-up app id: Zalo's are 16–19 digits
ZALO_OA_ID = "1900200200200200"
TELEGRAM_BOT_ID = "7000000001"
TELEGRAM_BOT_NAME = "Trợ lý DVC (mô phỏng)"
TELEGRAM_BOT_USERNAME = "dvc_mo_phong_bot"
ESMS_API_KEY = "SIMULATOR"
ESMS_BRANDNAME = "MOPHONG"
ZALO_TOKEN_SECONDS = 90000  # what Zalo answers (25 h); the stand-in itself never expires them

# Where each provider lives on the stand-in server (what the *_URL variables point at).
ZALO_PREFIX = "/zalo"
TELEGRAM_PREFIX = "/telegram"
ESMS_PREFIX = "/esms"
ESMS_SEND_PATH = "/MainService.svc/json/SendMultipleMessage_V4_post_json/"

MAX_IMAGE_BYTES = 1_000_000
MAX_IMAGES = 500
MAX_ENTRIES_PER_CONVERSATION = 1000

# The stand-ins' own secrets: generated once into var/ (owner-only) by bot.core.config.secret,
# under names of their own so that a real secret in the environment is never taken for one.
_SECRETS = {
    "ZALO_APP_SECRET": ("SIMULATOR_ZALO_APP_SECRET", "simulator_zalo_app_secret"),
    "ZALO_OA_SECRET": ("SIMULATOR_ZALO_OA_SECRET", "simulator_zalo_oa_secret"),
    "TELEGRAM_BOT_TOKEN": ("SIMULATOR_TELEGRAM_TOKEN", "simulator_telegram_token"),
    "TELEGRAM_WEBHOOK_SECRET": (
        "SIMULATOR_TELEGRAM_WEBHOOK_SECRET",
        "simulator_telegram_webhook_secret",
    ),
    "SMS_WEBHOOK_SECRET": ("SIMULATOR_SMS_WEBHOOK_SECRET", "simulator_sms_webhook_secret"),
    "ESMS_SECRET_KEY": ("SIMULATOR_ESMS_SECRET_KEY", "simulator_esms_secret_key"),
}


def _own_secret(name: str) -> str:
    env_var, file_name = _SECRETS[name]
    return secret(env_var, file_name).decode()


def zalo_token(app_secret: str, kind: str, nonce: str) -> str:
    """A Zalo token the stand-in can recognise without remembering it (so tokens stored in the
    database survive a restart of the simulator): `sim-<kind>-<nonce>.<mac>`."""
    mac = hmac.new(app_secret.encode(), f"{kind}:{nonce}".encode(), hashlib.sha256)
    return f"sim-{kind}-{nonce}.{mac.hexdigest()[:32]}"


def zalo_token_ok(app_secret: str, kind: str, token: str | None) -> bool:
    prefix = f"sim-{kind}-"
    if not token or not token.startswith(prefix) or "." not in token:
        return False
    nonce = token[len(prefix) :].rpartition(".")[0]
    expected = zalo_token(app_secret, kind, nonce)
    return hmac.compare_digest(token.encode("utf-8", "surrogateescape"), expected.encode())


def _own_values() -> dict[str, str]:
    """The values `local_env` gives the LOCAL_CHANNEL_VARS (they do not depend on the port)."""
    token = _own_secret("TELEGRAM_BOT_TOKEN")
    return {
        "ZALO_APP_ID": ZALO_APP_ID,
        "ZALO_APP_SECRET": _own_secret("ZALO_APP_SECRET"),
        "ZALO_OA_SECRET": _own_secret("ZALO_OA_SECRET"),
        "TELEGRAM_BOT_TOKEN": f"{TELEGRAM_BOT_ID}:{token}",
        "SMS_WEBHOOK_SECRET": _own_secret("SMS_WEBHOOK_SECRET"),
        "ESMS_API_KEY": ESMS_API_KEY,
        "SMS_PROVIDER": "esms",
    }


def local_env(port: int) -> dict[str, str]:
    """The environment that points the real connectors at the stand-ins on 127.0.0.1:`port`
    (for the Rasa server, the action server and the scheduler of a local demo)."""
    base = f"http://127.0.0.1:{port}"
    zalo = base + ZALO_PREFIX
    own = _own_values()
    return {
        **own,
        "ZALO_API_URL": zalo,
        "ZALO_OAUTH_URL": zalo,
        "ZALO_ZNS_URL": zalo,
        "ZALO_REFRESH_TOKEN": zalo_token(own["ZALO_APP_SECRET"], "refresh", "seed"),
        "TELEGRAM_WEBHOOK_SECRET": _own_secret("TELEGRAM_WEBHOOK_SECRET"),
        "TELEGRAM_API_URL": base + TELEGRAM_PREFIX,
        "ESMS_SECRET_KEY": _own_secret("ESMS_SECRET_KEY"),
        "ESMS_BRANDNAME": ESMS_BRANDNAME,
        "ESMS_BASE_URL": base + ESMS_PREFIX,
        SIMULATOR_URL: base,
    }


def real_channels_configured(env: Mapping[str, str]) -> bool:
    """Whether `env` holds real channel secrets (then the stand-ins must not start).

    Any of LOCAL_CHANNEL_VARS set counts, unless the environment is the stand-ins' own: marked
    by SIMULATOR_URL and every one of those variables equal to what `local_env` gives it (a
    process started by a supervisor that handed `local_env` to all its children)."""
    present = {name: env[name] for name in LOCAL_CHANNEL_VARS if env.get(name)}
    if not present:
        return False
    if not env.get(SIMULATOR_URL):
        return True
    own = _own_values()
    return any(not hmac.compare_digest(value, own[name]) for name, value in present.items())


@dataclass(frozen=True)
class StandinConfig:
    """What the stand-ins check callers against (taken from a `local_env` mapping)."""

    zalo_app_id: str
    zalo_app_secret: str
    zalo_oa_secret: str
    telegram_token: str
    telegram_webhook_secret: str
    sms_webhook_secret: str
    esms_api_key: str
    esms_secret_key: str
    esms_brandname: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StandinConfig:
        return cls(
            zalo_app_id=env["ZALO_APP_ID"],
            zalo_app_secret=env["ZALO_APP_SECRET"],
            zalo_oa_secret=env["ZALO_OA_SECRET"],
            telegram_token=env["TELEGRAM_BOT_TOKEN"],
            telegram_webhook_secret=env["TELEGRAM_WEBHOOK_SECRET"],
            sms_webhook_secret=env["SMS_WEBHOOK_SECRET"],
            esms_api_key=env["ESMS_API_KEY"],
            esms_secret_key=env["ESMS_SECRET_KEY"],
            esms_brandname=env["ESMS_BRANDNAME"],
        )


@dataclass(frozen=True)
class Choice:
    """A button the bot sent. `kind`: "text" (Zalo `oa.query.hide`, or a Telegram reply-keyboard
    button: pressing it sends `value` as the user's text), "callback" (Telegram inline button:
    a callback query carrying `value`), "contact" (Telegram "share my phone"), "url" (a link)."""

    title: str
    kind: str
    value: str = ""

    def as_json(self, index: int) -> dict[str, Any]:
        return {"index": index, "title": self.title, "kind": self.kind}


@dataclass(frozen=True)
class Entry:
    """One message of a conversation: `sender` "bot" (arrived at a stand-in) or "me" (what the
    simulated citizen sent). `ref` is the provider's message id (Telegram: the message a
    callback query refers to)."""

    seq: int
    channel: str
    recipient: str
    sender: str
    text: str
    choices: tuple[Choice, ...] = ()
    image: str | None = None
    ref: str = ""
    at: float = field(default_factory=time.time)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.seq,
            "channel": self.channel,
            "from": self.sender,
            "text": self.text,
            "choices": [c.as_json(i) for i, c in enumerate(self.choices)],
            "image": self.image,
            "at": self.at,
        }


class Inbox:
    """What arrived at the stand-ins and what the simulated citizens sent, per conversation
    (channel, recipient), in one numbering (`seq`) so a page can ask for what is new."""

    def __init__(self, per_conversation: int = MAX_ENTRIES_PER_CONVERSATION) -> None:
        self._seq = itertools.count(1)
        self.last = 0
        self._per_conversation = per_conversation
        self._conversations: dict[tuple[str, str], deque[Entry]] = {}
        self._images: OrderedDict[str, tuple[bytes, str]] = OrderedDict()

    def add(
        self,
        channel: str,
        recipient: str,
        sender: str,
        text: str = "",
        choices: Iterable[Choice] = (),
        image: str | None = None,
        ref: str = "",
    ) -> Entry:
        self.last = next(self._seq)
        entry = Entry(self.last, channel, recipient, sender, text, tuple(choices), image, ref)
        key = (channel, recipient)
        if key not in self._conversations:
            self._conversations[key] = deque(maxlen=self._per_conversation)
        self._conversations[key].append(entry)
        return entry

    def entries(self, keys: Iterable[tuple[str, str]], after: int = 0) -> list[Entry]:
        """The entries of these conversations after `after`, in order."""
        found = [e for key in set(keys) for e in self._conversations.get(key, ()) if e.seq > after]
        return sorted(found, key=lambda e: e.seq)

    def entry(self, keys: Iterable[tuple[str, str]], seq: int) -> Entry | None:
        return next((e for e in self.entries(keys) if e.seq == seq), None)

    def store_image(self, data: bytes, content_type: str) -> str:
        """Keep a picture (the oldest go first past MAX_IMAGES); its URL on the server."""
        ident = secrets.token_urlsafe(12)
        self._images[ident] = (data, content_type)
        while len(self._images) > MAX_IMAGES:
            self._images.popitem(last=False)
        return f"/sim/image/{ident}"

    def image(self, ident: str) -> tuple[bytes, str] | None:
        return self._images.get(ident)


def phone_key(value: str) -> str:
    """A phone as the SMS conversation key (0xxxxxxxxx); anything else unchanged."""
    try:
        return normalize_phone(value)
    except InvalidValue:
        return value


def image_type(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    return None


def _zalo_choices(message: Mapping[str, Any]) -> tuple[list[Choice], dict[str, Any] | None]:
    """The buttons of a Zalo message and its media element (if it shows an image)."""
    attachment = message.get("attachment")
    payload = attachment.get("payload") if isinstance(attachment, dict) else None
    if not isinstance(payload, dict):
        return [], None
    if payload.get("template_type") == "media":
        elements = payload.get("elements") or [None]
        return [], elements[0] if isinstance(elements[0], dict) else None
    choices = []
    for button in payload.get("buttons") or []:
        if not isinstance(button, dict):
            continue
        title, value = str(button.get("title", "")), button.get("payload")
        if button.get("type") == "oa.open.url" and isinstance(value, dict):
            choices.append(Choice(title, "url", str(value.get("url", ""))))
        elif isinstance(value, str):
            choices.append(Choice(title, "text", value))
    return choices, None


def _telegram_choices(markup: Any) -> list[Choice]:
    if not isinstance(markup, dict):
        return []
    choices = []
    for row in markup.get("inline_keyboard") or []:
        for button in row:
            title = str(button.get("text", ""))
            if button.get("url"):
                choices.append(Choice(title, "url", str(button["url"])))
            elif button.get("callback_data") is not None:
                choices.append(Choice(title, "callback", str(button["callback_data"])))
    for row in markup.get("keyboard") or []:
        for button in row:
            button = {"text": button} if isinstance(button, str) else button
            title = str(button.get("text", ""))
            kind = "contact" if button.get("request_contact") else "text"
            choices.append(Choice(title, kind, title))
    return choices


class StandIns:
    """The provider routes. Each checks its caller as the provider would (Zalo access token and
    app secret, Telegram bot token, eSMS keys) and files what it carries in the inbox."""

    def __init__(self, config: StandinConfig, inbox: Inbox) -> None:
        self.config, self.inbox = config, inbox
        self._ids = itertools.count(1)
        self._attachments: dict[str, str] = {}  # Zalo attachment_id → image URL on this server
        self.telegram_webhook: dict[str, Any] = {}
        self.answered_callbacks: list[str] = []

    def install(self, app: web.Application) -> None:
        zalo, telegram, esms = ZALO_PREFIX, TELEGRAM_PREFIX, ESMS_PREFIX
        app.router.add_post(f"{zalo}/v3.0/oa/message/cs", self.zalo_message)
        app.router.add_post(f"{zalo}/v2.0/oa/upload/image", self.zalo_upload)
        app.router.add_post(f"{zalo}/message/template", self.zalo_template)
        app.router.add_post(f"{zalo}/v4/oa/access_token", self.zalo_oauth)
        app.router.add_post(telegram + "/bot{token}/{method}", self.telegram)
        app.router.add_post(esms + ESMS_SEND_PATH, self.esms_send)

    # Zalo ---------------------------------------------------------------------------------

    def _zalo_refused(self, request: web.Request) -> web.Response | None:
        token = request.headers.get("access_token")
        if zalo_token_ok(self.config.zalo_app_secret, "access", token):
            return None
        return web.json_response({"error": -216, "message": "Access token is invalid"})

    async def _zalo_json(self, request: web.Request) -> dict[str, Any] | web.Response:
        if (refused := self._zalo_refused(request)) is not None:
            return refused
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": -201, "message": "Parameters are invalid"})
        if not isinstance(body, dict):
            return web.json_response({"error": -201, "message": "Parameters are invalid"})
        return body

    async def zalo_message(self, request: web.Request) -> web.Response:
        body = await self._zalo_json(request)
        if isinstance(body, web.Response):
            return body
        recipient, message = body.get("recipient"), body.get("message")
        if not isinstance(recipient, dict) or not isinstance(message, dict):
            return web.json_response({"error": -201, "message": "Parameters are invalid"})
        user = str(recipient.get("user_id", ""))
        choices, media = _zalo_choices(message)
        image = None
        if media is not None:
            image = self._attachments.get(str(media.get("attachment_id"))) or media.get("url")
            if not image:
                return web.json_response({"error": -201, "message": "attachment not found"})
        ref = f"zm{next(self._ids)}"
        text = str(message.get("text", ""))
        self.inbox.add("zalo", user, "bot", text, choices, image, ref)
        return web.json_response({"error": 0, "message": "Success", "data": {"message_id": ref}})

    async def zalo_upload(self, request: web.Request) -> web.Response:
        if (refused := self._zalo_refused(request)) is not None:
            return refused
        field = (await request.post()).get("file")
        if not isinstance(field, web.FileField):
            return web.json_response({"error": -201, "message": "file is missing"})
        with field.file:
            data = field.file.read(MAX_IMAGE_BYTES + 1)
        content_type = image_type(data)
        if content_type is None or len(data) > MAX_IMAGE_BYTES:
            return web.json_response({"error": -210, "message": "image is not a PNG/JPEG <1MB"})
        attachment = f"att{next(self._ids)}"
        self._attachments[attachment] = self.inbox.store_image(data, content_type)
        return web.json_response(
            {"error": 0, "message": "Success", "data": {"attachment_id": attachment}}
        )

    async def zalo_template(self, request: web.Request) -> web.Response:
        """A template message (ZBS/ZNS) by phone or by Zalo user id, shown as its data."""
        body = await self._zalo_json(request)
        if isinstance(body, web.Response):
            return body
        data = body.get("template_data")
        data = data if isinstance(data, dict) else {}
        lines = [f"[Tin mẫu Zalo {body.get('template_id', '?')}]"]
        lines += [f"{key}: {value}" for key, value in data.items()]
        if body.get("user_id"):
            recipient = str(body["user_id"])
        else:
            recipient = phone_key(str(body.get("phone", "")))
        ref = f"zt{next(self._ids)}"
        self.inbox.add("zns", recipient, "bot", "\n".join(lines), ref=ref)
        return web.json_response({"error": 0, "message": "Success", "data": {"msg_id": ref}})

    async def zalo_oauth(self, request: web.Request) -> web.Response:
        """OAuth v4 refresh: any refresh token this stand-in issued (the seed of
        ZALO_REFRESH_TOKEN included) buys a new pair."""
        form = await request.post()
        secret_key = request.headers.get("secret_key") or ""
        if not hmac.compare_digest(secret_key.encode(), self.config.zalo_app_secret.encode()):
            return web.json_response({"error": -14002, "error_name": "Invalid secret key"})
        if str(form.get("app_id", "")) != self.config.zalo_app_id:
            return web.json_response({"error": -14001, "error_name": "Invalid app id"})
        refresh = form.get("refresh_token")
        if not zalo_token_ok(self.config.zalo_app_secret, "refresh", str(refresh or "")):
            return web.json_response({"error": -14014, "error_name": "Invalid refresh token"})
        nonce = secrets.token_hex(8)
        return web.json_response(
            {
                "access_token": zalo_token(self.config.zalo_app_secret, "access", nonce),
                "refresh_token": zalo_token(self.config.zalo_app_secret, "refresh", nonce),
                "expires_in": str(ZALO_TOKEN_SECONDS),
            }
        )

    # Telegram -----------------------------------------------------------------------------

    async def telegram(self, request: web.Request) -> web.Response:
        given = request.match_info["token"]
        if not hmac.compare_digest(given.encode(), self.config.telegram_token.encode()):
            body = {"ok": False, "error_code": 401, "description": "Unauthorized"}
            return web.json_response(body, status=401)
        params: dict[str, Any] = {}
        for key, value in (await request.post()).items():
            if isinstance(value, web.FileField):
                with value.file:
                    params[key] = value.file.read(MAX_IMAGE_BYTES + 1)
            else:
                params[key] = value
        method = request.match_info["method"]
        handler = {
            "getMe": self._tg_get_me,
            "setWebhook": self._tg_set_webhook,
            "getWebhookInfo": self._tg_webhook_info,
            "deleteWebhook": self._tg_delete_webhook,
            "answerCallbackQuery": self._tg_answer_callback,
            "sendMessage": self._tg_send_message,
            "sendPhoto": self._tg_send_photo,
        }.get(method)
        if handler is None:
            body = {"ok": False, "error_code": 404, "description": "Not Found: method not found"}
            return web.json_response(body, status=404)
        try:
            result = handler(params)
        except (KeyError, ValueError) as exc:
            description = f"Bad Request: {type(exc).__name__} {str(exc)[:80]}"
            body = {"ok": False, "error_code": 400, "description": description}
            return web.json_response(body, status=400)
        return web.json_response({"ok": True, "result": result})

    def _tg_get_me(self, params: dict[str, Any]) -> Any:
        return {
            "id": int(TELEGRAM_BOT_ID),
            "is_bot": True,
            "first_name": TELEGRAM_BOT_NAME,
            "username": TELEGRAM_BOT_USERNAME,
            "can_join_groups": False,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    def _tg_set_webhook(self, params: dict[str, Any]) -> Any:
        self.telegram_webhook = {k: v for k, v in params.items() if k != "secret_token"}
        return True

    def _tg_delete_webhook(self, params: dict[str, Any]) -> Any:
        self.telegram_webhook = {}
        return True

    def _tg_webhook_info(self, params: dict[str, Any]) -> Any:
        url = str(self.telegram_webhook.get("url", ""))
        return {"url": url, "has_custom_certificate": False, "pending_update_count": 0}

    def _tg_answer_callback(self, params: dict[str, Any]) -> Any:
        self.answered_callbacks.append(str(params["callback_query_id"]))
        return True

    def _tg_message(self, chat: str, text: str | None, **extra: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        chat_id = int(chat)
        result: dict[str, Any] = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "from": {"id": int(TELEGRAM_BOT_ID), "is_bot": True, "first_name": TELEGRAM_BOT_NAME},
            **extra,
        }
        if text is not None:
            result["text"] = text
        return result

    def _tg_send_message(self, params: dict[str, Any]) -> Any:
        chat, text = str(params["chat_id"]), str(params["text"])
        markup = json.loads(params["reply_markup"]) if params.get("reply_markup") else None
        result = self._tg_message(chat, text)
        ref = str(result["message_id"])
        self.inbox.add("telegram", chat, "bot", text, _telegram_choices(markup), ref=ref)
        return result

    def _tg_send_photo(self, params: dict[str, Any]) -> Any:
        chat, photo = str(params["chat_id"]), params["photo"]
        if isinstance(photo, bytes):
            content_type = image_type(photo)
            if content_type is None or len(photo) > MAX_IMAGE_BYTES:
                raise ValueError("photo is not a PNG/JPEG under 1 MB")
            image = self.inbox.store_image(photo, content_type)
        else:
            image = str(photo)
        caption = str(params.get("caption") or "")
        markup = json.loads(params["reply_markup"]) if params.get("reply_markup") else None
        size = {"file_id": "sim", "file_unique_id": "sim", "width": 1, "height": 1}
        result = self._tg_message(chat, None, photo=[size], caption=caption or None)
        ref = str(result["message_id"])
        self.inbox.add("telegram", chat, "bot", caption, _telegram_choices(markup), image, ref)
        return result

    # eSMS ---------------------------------------------------------------------------------

    async def esms_send(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"CodeResult": "99", "ErrorMessage": "not JSON"})
        if not isinstance(body, dict):
            return web.json_response({"CodeResult": "99", "ErrorMessage": "not an object"})
        keys_ok = hmac.compare_digest(
            str(body.get("ApiKey", "")).encode(), self.config.esms_api_key.encode()
        ) & hmac.compare_digest(
            str(body.get("SecretKey", "")).encode(), self.config.esms_secret_key.encode()
        )
        if not keys_ok:
            return web.json_response({"CodeResult": "101", "ErrorMessage": "Wrong keys"})
        if body.get("Brandname") != self.config.esms_brandname:
            return web.json_response({"CodeResult": "104", "ErrorMessage": "Brandname"})
        try:
            phone = normalize_phone(str(body.get("Phone", "")))
        except InvalidValue:
            return web.json_response({"CodeResult": "108", "ErrorMessage": "Phone invalid"})
        sms_id = f"sms{next(self._ids)}"
        self.inbox.add("sms", phone, "bot", str(body.get("Content", "")), ref=sms_id)
        return web.json_response({"CodeResult": "100", "SMSID": sms_id})
