"""SMS channel: replies and proactive messages through the configured gateway
(`bot.delivery.sms`), and inbound SMS from a two-way number or short code on
`/webhooks/sms/webhook`.

Inbound calls (GET as eSMS sends its MO short-code calls, or POST with JSON or a form) must carry
the shared secret SMS_WEBHOOK_SECRET in the `X-Webhook-Secret` header, and only there: a secret
in the URL would end up in access logs, so a `secret` query parameter is refused (401). A
gateway that can only call a fixed URL goes through a relay (e.g. the nginx in front of Rasa)
that adds the header. Optional hardening:

- SMS_WEBHOOK_SIGNING_KEY: every call also carries `X-Webhook-Timestamp` (unix seconds, within
  SMS_WEBHOOK_MAX_AGE seconds of our clock, default 300) and `X-Webhook-Signature`, the hex
  HMAC-SHA256 under that key of `<timestamp>.` followed by the raw request body, or for a GET
  by the raw query string (the bytes after `?`, exactly as sent). A signed POST takes its
  fields from the body only, since the query string is not signed.
- SMS_WEBHOOK_ALLOWED_IPS: comma-separated addresses or networks the calls may come from (403
  otherwise); behind a proxy listed in RASA_TRUSTED_PROXIES, its `X-Real-IP` (bot.identity.proxies).

Fields: `from`/`sender`/`phone`, `text`/`content`/`message`, and an id `id`/`smsid`/`message_id`
used to drop retries. The message reaches the bot with the sending number as a sealed verified
fact (bot.identity.speaker: the gateway authenticated the call, the carrier the number), after the
per-sender rate limit (bot.identity.ratelimit; the webhook still answers 200 so the gateway does not
retry). A reply "1", "2", … is mapped to the payloads of the last buttons sent to that number.
Outgoing text is unaccented and fits SMS_MAX_SEGMENTS GSM segments (default 1).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import os
import re
import time
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import parse_qs

from rasa.core.channels.channel import OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.headers import parse_content_header
from sanic.request import Request, parse_multipart_form
from sanic.response import HTTPResponse
from sqlalchemy.engine import Engine

from bot.delivery.channel_state import (
    choice_payload,
    first_time,
    native_id,
    sender_id,
    set_last_buttons,
)
from bot.delivery.sending import with_retries
from bot.delivery.sms import SmsGateway, to_sms_text, to_sms_with_choices
from bot.identity.proxies import REAL_IP_HEADER, client_address, parse_trusted
from bot.identity.ratelimit import SenderRateLimit
from bot.identity.speaker import ENVELOPE, VERIFIED_PHONE, seal
from bot.vietnamese.text import clean_text
from bot.vietnamese.vn import InvalidValue, normalize_phone
from connectors import common
from connectors.channel import ChannelInput, ChannelOutput
from connectors.sms_providers import default_gateway

logger = logging.getLogger(__name__)

NAME = "sms"
SECRET_HEADER = "X-Webhook-Secret"
TIMESTAMP_HEADER = "X-Webhook-Timestamp"
SIGNATURE_HEADER = "X-Webhook-Signature"
SECRET_NOT_IN_HEADER = f"shared secret must be sent in the {SECRET_HEADER} header"
DEFAULT_MAX_AGE = 300.0
UNIX_SECONDS = re.compile(r"[0-9]{1,12}")
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
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


def parse_networks(
    value: str | None, name: str = "SMS_WEBHOOK_ALLOWED_IPS"
) -> tuple[IPNetwork, ...] | None:
    """`"10.0.0.0/8, 203.0.113.7"` → the networks; None (no allow-list) when blank."""
    networks = []
    for entry in (p.strip() for p in (value or "").split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as exc:
            raise ValueError(f"{name}: {entry[:40]!r} is not an IP address or network") from exc
    return tuple(networks) or None


def address_allowed(address: str, allowed: Collection[IPNetwork]) -> bool:
    """Whether `address` (IPv4-mapped IPv6 counts as its IPv4) is in one of the networks."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:  # "?" when the peer is unknown
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in allowed)


def signature(key: str, timestamp: str, payload: bytes) -> str:
    """Hex HMAC-SHA256 of `<timestamp>.` + payload: what X-Webhook-Signature must hold."""
    message = f"{timestamp}.".encode() + payload
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def signed_payload(request: Request) -> bytes:
    """The raw body, or for a GET (no body) the raw query string as sent."""
    if request.method == "GET":
        return request.raw_url.partition(b"?")[2]
    return request.body or b""


class SmsOutput(ChannelOutput):
    NAME = NAME

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


class SmsInput(ChannelInput):
    NAME = NAME

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> SmsInput:
        secret = os.environ.get("SMS_WEBHOOK_SECRET")
        if not secret:
            logger.info(
                "sms channel: inbound webhook disabled (set SMS_WEBHOOK_SECRET); "
                "outgoing SMS via %s",
                os.environ.get("SMS_PROVIDER", "outbox"),
            )
        return cls(
            secret,
            max_segments=int(os.environ.get("SMS_MAX_SEGMENTS", "1")),
            signing_key=os.environ.get("SMS_WEBHOOK_SIGNING_KEY") or None,
            max_age=common.positive_seconds(os.environ, "SMS_WEBHOOK_MAX_AGE", DEFAULT_MAX_AGE),
            allowed_ips=parse_networks(os.environ.get("SMS_WEBHOOK_ALLOWED_IPS")),
            trusted_proxies=parse_trusted(os.environ.get("RASA_TRUSTED_PROXIES")),
            rate_limit=SenderRateLimit.from_env(),
        )

    def __init__(
        self,
        secret: str | None,
        gateway: SmsGateway | None = None,
        engine: Engine | None = None,
        max_segments: int = 1,
        *,
        signing_key: str | None = None,
        max_age: float = DEFAULT_MAX_AGE,
        allowed_ips: Collection[IPNetwork] | None = None,
        trusted_proxies: Collection[str] | None = None,
        rate_limit: SenderRateLimit | None = None,
    ) -> None:
        """`allowed_ips` None: calls from anywhere; `trusted_proxies` None: none trusted;
        `rate_limit` None: SenderRateLimit.from_env()."""
        self.secret, self._gateway, self._engine = secret, gateway, engine
        self.max_segments = max_segments
        self.signing_key, self.max_age = signing_key, max_age
        self.allowed_ips = tuple(allowed_ips) if allowed_ips is not None else None
        self.trusted_proxies = frozenset(trusted_proxies or ())
        self.rate_limit = rate_limit if rate_limit is not None else SenderRateLimit.from_env()

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
        if not await self.admit(sender, self.get_output_channel()):
            return
        text = common.clip(clean_text(text).strip())
        payload = await asyncio.to_thread(choice_payload, self.engine, sender, text)
        # The gateway authenticated the call and the carrier the sending number.
        metadata = {ENVELOPE: seal(NAME, sender, {VERIFIED_PHONE: phone})}
        await on_new_message(
            UserMessage(
                payload or text,
                self.get_output_channel(),
                sender,
                input_channel=NAME,
                message_id=message_id,
                metadata=metadata,
            )
        )

    def _authenticate(self, request: Request) -> HTTPResponse | None:
        """None when the call may be read: allowed source, secret header, valid signature."""
        if self.allowed_ips is not None:
            real_ip = request.headers.get(REAL_IP_HEADER)
            address = client_address(request.ip, real_ip, self.trusted_proxies)
            if not address_allowed(address, self.allowed_ips):
                return common.reject(NAME, 403, f"source address {address[:64]} is not allowed")
        given = request.headers.get(SECRET_HEADER)
        if not given:
            in_url = "secret" in request.args
            return common.reject(
                NAME, 401, SECRET_NOT_IN_HEADER if in_url else "missing shared secret"
            )
        if not common.secrets_equal(given, self.secret or ""):
            return common.reject(NAME, 403, "wrong shared secret")
        return self._check_signature(request)

    def _check_signature(self, request: Request) -> HTTPResponse | None:
        if not self.signing_key:
            return None
        timestamp = request.headers.get(TIMESTAMP_HEADER, "")
        given = request.headers.get(SIGNATURE_HEADER, "").strip().lower()
        if not given or not UNIX_SECONDS.fullmatch(timestamp):
            return common.reject(NAME, 401, "missing signature or timestamp")
        expected = signature(self.signing_key, timestamp, signed_payload(request))
        if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode()):
            return common.reject(NAME, 401, "bad signature")
        age = time.time() - int(timestamp)
        if abs(age) > self.max_age:
            return common.reject(NAME, 401, f"stale request ({int(age)} s old)")
        return None

    def blueprint(self, on_new_message: common.OnNewMessage) -> Blueprint:
        if not self.secret:
            return common.disabled_blueprint(NAME, "SMS_WEBHOOK_SECRET not set")

        async def receive(request: Request) -> HTTPResponse:
            if (refused := self._authenticate(request)) is not None:
                return refused
            # The query string of a signed POST is not signed: its fields come from the body.
            signed_post = bool(self.signing_key) and request.method == "POST"
            fields: dict[str, Any] = {} if signed_post else dict(request.args)
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

        return self.webhook_blueprint(__name__, receive, methods=("GET", "POST"))
