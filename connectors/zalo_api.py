"""Zalo Official Account API v3 and ZNS over httpx (no unofficial SDK).

The access token (25 h) and the single-use, rotating refresh token (3 months) live in the
`zalo_tokens` table. A refresh first takes a write lock on that row (an UPDATE: a row lock on
PostgreSQL, the database write lock on SQLite), then re-reads it: a worker that waited finds the
token already renewed and uses it, so two workers never spend the same refresh token.
Sources and error codes: ../shared/reference/channels.md §1.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from bot.core.clock import utcnow
from bot.core.db import unit_of_work
from bot.core.models import ZaloToken
from bot.delivery.sending import SendError
from bot.delivery.templates import TemplateRules, TemplateTag, parse_tag
from connectors import common
from connectors.provider_http import check_status, provider_errors

logger = logging.getLogger(__name__)

RATE_LIMITED = {-32}
TOKEN_INVALID = {-216, -220}
# Cannot reach this person on this path now (no interaction in the window, quota, not a
# follower, night-time ban, user restriction): try the next channel.
NOT_REACHABLE = {-211, -213, -224, -227, -230, -232, -234, -244}
REFRESH_MARGIN = dt.timedelta(minutes=5)
MAX_TEXT = 2000


@dataclass(frozen=True)
class ZnsTemplate:
    """An approved template (ZBS Template Message; ZNS before 2026): its id, where each
    parameter's value comes from, its tag and the length of its fixed text."""

    template_id: str
    params: dict[str, str]
    tag: TemplateTag = TemplateTag.TRANSACTION
    fixed_chars: int = 0

    def data_for(self, values: Mapping[str, Any]) -> dict[str, str]:
        """Template data from the notice's values; KeyError when one is missing."""
        return {param: str(values[source]) for param, source in self.params.items()}


def load_zns_templates(path: str | None) -> dict[str, ZnsTemplate]:
    """`kind: {template_id, params: {template_param: notice_value_name}, tag: 1|2,
    fixed_chars: N}` from YAML; a promotional (tag 3) template stops the start."""
    if not path:
        return {}
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    return {
        kind: ZnsTemplate(
            str(spec["template_id"]),
            dict(spec.get("params") or {}),
            parse_tag(spec.get("tag", 1)),
            int(spec.get("fixed_chars", 0)),
        )
        for kind, spec in raw.items()
    }


@dataclass(frozen=True)
class ZaloConfig:
    app_id: str
    app_secret: str  # "App Secret Key": OAuth only
    oa_secret: str  # "OA Secret Key": webhook signatures
    api_url: str = "https://openapi.zalo.me"
    oauth_url: str = "https://oauth.zaloapp.com"
    zns_url: str = "https://business.openapi.zalo.me"
    zns_mode: str | None = None
    zns_templates: dict[str, ZnsTemplate] = field(default_factory=dict)
    template_uid_url: str = ""  # "" = {zns_url}/message/template (ZALO_TEMPLATE_UID_URL)
    template_rules: TemplateRules = field(default_factory=TemplateRules)
    refresh_token: str | None = None
    max_event_age: float = 300.0
    timeout: float = 10.0

    REQUIRED = ("ZALO_APP_ID", "ZALO_APP_SECRET", "ZALO_OA_SECRET")

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ZaloConfig | None:
        missing = [k for k in cls.REQUIRED if not env.get(k)]
        if missing:
            common.log_disabled("zalo", missing)
            return None
        return cls(
            app_id=env["ZALO_APP_ID"],
            app_secret=env["ZALO_APP_SECRET"],
            oa_secret=env["ZALO_OA_SECRET"],
            api_url=env.get("ZALO_API_URL", cls.api_url).rstrip("/"),
            oauth_url=env.get("ZALO_OAUTH_URL", cls.oauth_url).rstrip("/"),
            zns_url=env.get("ZALO_ZNS_URL", cls.zns_url).rstrip("/"),
            zns_mode=env.get("ZALO_ZNS_MODE") or None,
            zns_templates=load_zns_templates(env.get("ZALO_ZNS_TEMPLATES")),
            template_uid_url=env.get("ZALO_TEMPLATE_UID_URL", cls.template_uid_url),
            template_rules=template_rules_from_env(env),
            refresh_token=env.get("ZALO_REFRESH_TOKEN") or None,
            max_event_age=common.positive_seconds(env, "ZALO_MAX_EVENT_AGE", cls.max_event_age),
            timeout=float(env.get("ZALO_TIMEOUT", cls.timeout)),
        )


def template_rules_from_env(env: Mapping[str, str]) -> TemplateRules:
    """ZALO_TEMPLATE_DAILY_QUOTA (the OA's daily template quota; unset: Zalo's answer decides)
    and ZALO_CARE_HOURS ("07:00-22:00", when customer-care templates may go)."""
    quota = env.get("ZALO_TEMPLATE_DAILY_QUOTA")
    start, _, end = env.get("ZALO_CARE_HOURS", "07:00-22:00").partition("-")
    hours = (dt.time.fromisoformat(start.strip()), dt.time.fromisoformat(end.strip()))
    return TemplateRules(int(quota) if quota else None, hours)


def event_mac(app_id: str, oa_secret: str, body: bytes, timestamp: str) -> str:
    """X-ZEvent-Signature's hex digest: sha256(app_id + raw body + timestamp + OA secret key).
    Public so that stand-ins and tests sign events exactly as Zalo does."""
    signed = app_id.encode() + body + timestamp.encode() + oa_secret.encode()
    return hashlib.sha256(signed).hexdigest()


def signature_ok(config: ZaloConfig, body: bytes, timestamp: str, header: str) -> bool:
    """X-ZEvent-Signature: `mac=` + event_mac(...)."""
    given = header.strip().removeprefix("mac=").lower()
    expected = event_mac(config.app_id, config.oa_secret, body, timestamp).encode()
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected)


def zalo_error(channel: str, code: int, message: str) -> SendError:
    reason = f"zalo error {code}: {message[:100]}"
    if code in RATE_LIMITED:
        return SendError(channel, "retry", reason, retry_after=1.0)
    if code in NOT_REACHABLE:
        return SendError(channel, "fallback", reason)
    return SendError(channel, "permanent", reason)


class ZaloTokenStore:
    """Access and refresh tokens in the database, refreshed by one worker at a time."""

    def __init__(self, engine: Engine, config: ZaloConfig, name: str = "oa") -> None:
        self.engine, self.config, self.name = engine, config, name
        self._cached: tuple[str, dt.datetime] | None = None

    def cached(self) -> str | None:
        """The token this worker last saw, while it is not about to expire: no database and
        no thread hop on the send path. If another worker refreshed meanwhile, Zalo answers
        "invalid token" and `refresh` picks up the new one from the database."""
        if self._cached is None:
            return None
        token, expires_at = self._cached
        return token if expires_at > utcnow() + REFRESH_MARGIN else None

    def _remember(self, token: str, expires_at: dt.datetime) -> str:
        self._cached = (token, expires_at)
        return token

    def save(self, access_token: str, refresh_token: str, expires_in: float) -> None:
        """Store tokens obtained outside (first authorisation, `python -m connectors`)."""
        with unit_of_work(self.engine) as session:
            row = session.get(ZaloToken, self.name) or ZaloToken(name=self.name, refreshes=0)
            row.access_token, row.refresh_token = access_token, refresh_token
            row.expires_at = utcnow() + dt.timedelta(seconds=float(expires_in))
            session.add(row)
        self._cached = None

    def _bootstrap(self) -> None:
        """First start: seed the row from ZALO_REFRESH_TOKEN (another worker may race us)."""
        if not self.config.refresh_token:
            raise SendError("zalo", "permanent", "no Zalo token stored; see README (Zalo)")
        try:
            with unit_of_work(self.engine) as session:
                session.add(
                    ZaloToken(
                        name=self.name,
                        access_token="",
                        refresh_token=self.config.refresh_token,
                        expires_at=utcnow(),
                        refreshes=0,
                    )
                )
        except IntegrityError:
            pass

    def access_token(self) -> str:
        """A token valid for at least a few minutes, refreshing first if needed."""
        if (token := self.cached()) is not None:
            return token
        with unit_of_work(self.engine) as session:
            row = session.get(ZaloToken, self.name)
            if row is not None and row.expires_at > utcnow() + REFRESH_MARGIN:
                return self._remember(row.access_token, row.expires_at)
            stale = row.access_token if row is not None else None
        if stale is None:
            self._bootstrap()
        return self.refresh(stale)

    def refresh(self, stale: str | None) -> str:
        """Renew the pair unless another worker already replaced the `stale` access token."""
        with unit_of_work(self.engine) as session:
            session.execute(  # the lock: nobody else passes this line until we commit
                update(ZaloToken).where(ZaloToken.name == self.name).values(updated_at=utcnow())
            )
            row = session.scalar(
                select(ZaloToken).where(ZaloToken.name == self.name).with_for_update()
            )
            if row is None:
                raise SendError("zalo", "permanent", "no Zalo token stored")
            if row.access_token != stale and row.expires_at > utcnow() + REFRESH_MARGIN:
                return self._remember(row.access_token, row.expires_at)
            data = self._call_oauth(row.refresh_token)
            row.access_token, row.refresh_token = data["access_token"], data["refresh_token"]
            row.expires_at = utcnow() + dt.timedelta(seconds=float(data.get("expires_in", 3600)))
            row.refreshes += 1
            logger.info("zalo access token refreshed (refresh #%d)", row.refreshes)
            return self._remember(row.access_token, row.expires_at)

    def _call_oauth(self, refresh_token: str) -> dict[str, Any]:
        form = {
            "refresh_token": refresh_token,
            "app_id": self.config.app_id,
            "grant_type": "refresh_token",
        }
        try:
            answer = httpx.post(
                f"{self.config.oauth_url}/v4/oa/access_token",
                data=form,
                headers={"secret_key": self.config.app_secret},
                timeout=self.config.timeout,
            )
            data = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SendError("zalo", "retry", f"token refresh failed: {type(exc).__name__}") from exc
        if answer.status_code >= 300 or "access_token" not in data:
            logger.error("zalo refresh token rejected: an OA admin must authorise the app again")
            raise SendError("zalo", "permanent", f"token refresh rejected: {data.get('error')}")
        return data


class ZaloApi:
    """OA customer-service messages and ZNS template messages."""

    def __init__(self, config: ZaloConfig, store: ZaloTokenStore) -> None:
        self.config, self.store = config, store
        # Built now, not on the first (paced) send: building it takes tens of milliseconds.
        limits = httpx.Limits(max_connections=64)
        self.client = httpx.AsyncClient(timeout=config.timeout, limits=limits)
        self._refresh_lock: asyncio.Lock | None = None

    async def close(self) -> None:
        await self.client.aclose()

    async def _refresh(self, stale: str) -> None:
        if self._refresh_lock is None:
            self._refresh_lock = asyncio.Lock()
        async with self._refresh_lock:
            await asyncio.to_thread(self.store.refresh, stale)

    async def post(
        self,
        channel: str,
        url: str,
        body: dict[str, Any] | None = None,
        *,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
    ) -> dict[str, Any]:
        """POST a JSON `body`, or multipart `files` (uploads), with the access token; one
        refresh-and-retry on an invalid token. Zalo's answer is checked the same way for both."""
        for attempt in (1, 2):
            token = self.store.cached()
            if not token:  # not `cached() or await …`: mypy infers that as `str | None`
                token = await asyncio.to_thread(self.store.access_token)
            headers = {"access_token": token}
            with provider_errors(channel, "zalo"):
                if files is not None:
                    answer = await self.client.post(url, files=files, headers=headers)
                else:
                    answer = await self.client.post(url, json=body, headers=headers)
            check_status(answer, channel, "zalo")
            try:
                data = answer.json()
                code = int(data.get("error", 0))
            except (ValueError, TypeError, AttributeError) as exc:
                raise SendError(channel, "retry", "zalo answer is not JSON") from exc
            if code == 0:
                return data
            if code in TOKEN_INVALID and attempt == 1:
                await self._refresh(token)
                continue
            raise zalo_error(channel, code, str(data.get("message", "")))
        raise AssertionError("unreachable")

    async def send_text(
        self,
        user_id: str,
        text: str,
        buttons: list[dict[str, str]] | None = None,
        reply_to: str | None = None,
    ) -> str:
        """A customer-service message; `reply_to` (the user's msg_id) marks it as a reply."""
        message: dict[str, Any] = {"text": text[:MAX_TEXT]}
        if buttons:
            message["attachment"] = {"type": "template", "payload": {"buttons": buttons}}
        return await self._send_cs(user_id, message, reply_to)

    async def _send_cs(self, user_id: str, message: dict[str, Any], reply_to: str | None) -> str:
        recipient = {"user_id": user_id}
        if reply_to:
            recipient["message_id"] = reply_to
        body = {"recipient": recipient, "message": message}
        data = await self.post("zalo", f"{self.config.api_url}/v3.0/oa/message/cs", body)
        return str((data.get("data") or {}).get("message_id", ""))

    async def upload_image(self, png: bytes) -> str:
        """Upload a PNG (or JPEG) of at most 1 MB; the attachment_id Zalo answers is what a
        media message shows (Zalo keeps the image for 7 days). Quota: 5000 uploads a month."""
        jpeg = png.startswith(common.IMAGE_SIGNATURES["image/jpeg"])
        part = ("image.jpg", png, "image/jpeg") if jpeg else ("image.png", png, "image/png")
        url = f"{self.config.api_url}/v2.0/oa/upload/image"
        data = await self.post("zalo", url, files={"file": part})
        attachment_id = (data.get("data") or {}).get("attachment_id")
        if not isinstance(attachment_id, str) or not attachment_id:
            raise SendError("zalo", "retry", "zalo upload answer without attachment_id")
        return attachment_id

    async def send_image(
        self,
        user_id: str,
        attachment_id: str | None = None,
        url: str | None = None,
        reply_to: str | None = None,
    ) -> str:
        """A customer-service message showing one image: an uploaded one (`attachment_id`, from
        `upload_image`) or one Zalo fetches from a public `url`."""
        if attachment_id is not None and url is None:
            element = {"media_type": "image", "attachment_id": attachment_id}
        elif url is not None and attachment_id is None:
            element = {"media_type": "image", "url": url}
        else:
            raise ValueError("give exactly one of attachment_id and url")
        payload = {"template_type": "media", "elements": [element]}
        message = {"attachment": {"type": "template", "payload": payload}}
        return await self._send_cs(user_id, message, reply_to)

    async def send_template_to_user(
        self, user_id: str, template_id: str, data: dict[str, str], tracking_id: str
    ) -> str:
        """A template message to an OA follower by Zalo user id (cheaper than by phone)."""
        body: dict[str, Any] = {
            "user_id": user_id,
            "template_id": template_id,
            "template_data": data,
            "tracking_id": tracking_id[:48],
        }
        url = self.config.template_uid_url or f"{self.config.zns_url}/message/template"
        answer = await self.post("zns", url, body)
        return str((answer.get("data") or {}).get("msg_id", ""))

    async def send_zns(
        self, phone: str, template_id: str, data: dict[str, str], tracking_id: str
    ) -> str:
        """A ZNS template message to a phone number (84xxxxxxxxx on the wire)."""
        body: dict[str, Any] = {
            "phone": "84" + phone[1:] if phone.startswith("0") else phone,
            "template_id": template_id,
            "template_data": data,
            "tracking_id": tracking_id[:48],
        }
        if self.config.zns_mode:
            body["mode"] = self.config.zns_mode
        answer = await self.post("zns", f"{self.config.zns_url}/message/template", body)
        return str((answer.get("data") or {}).get("msg_id", ""))
