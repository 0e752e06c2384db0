"""The provincial payment platform's HTTP API, as a `bot.payments.platform.PaymentPlatform`.

`PAYMENT_PLATFORM_URL` switches it on (unset: no platform, the request carries its VietQR code
only). `create_link` POSTs `{url}/payments` with a JSON body (sorted keys, UTF-8)::

    {"amount": 50000, "callback_url": "https://…" | null, "currency": "VND",
     "description": "Le phi ...", "expires_at": "2026-11-27T02:00:00Z", "reference": "DLK-…"}

signed as the dossier gateway signs (`X-Timestamp: <unix seconds>`,
`X-Signature: sha256=<hex>` = HMAC-SHA256 over timestamp + "." + body, key
`PAYMENT_PLATFORM_SECRET`) with `Idempotency-Key: <reference>`, so a retry after a timeout
never opens a second payment. A 2xx answers `{"pay_url": "https://…", "payment_id": "…"}`.
Timeouts and 5xx are retried with backoff; a 4xx is final.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections.abc import Mapping
from typing import Any, TypeGuard
from urllib.parse import urlsplit

import httpx

from bot.payments.platform import PayLink, PayLinkRequest, PaymentPlatform, PlatformError
from connectors.signed_http import NoAnswer, Refused, SignedPoster

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})


def _utc_iso(moment: dt.datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return moment.isoformat(timespec="seconds") + "Z"


def _safe_pay_url(url: object) -> TypeGuard[str]:
    """An https URL, or plain http to this machine (local test servers); nothing else."""
    if not isinstance(url, str) or any(c.isspace() or ord(c) < 32 or c == "\x7f" for c in url):
        return False
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    if not host:
        return False
    if parts.scheme == "https":
        return url[:8].lower() == "https://"
    return parts.scheme == "http" and url[:7].lower() == "http://" and host in LOCAL_HOSTS


def _pay_link(response: httpx.Response) -> PayLink:
    try:
        data: Any = response.json()
    except ValueError:
        raise PlatformError(f"HTTP {response.status_code} with a body that is not JSON") from None
    if not isinstance(data, dict):
        raise PlatformError("answer is not a JSON object")
    pay_url, payment_id = data.get("pay_url"), data.get("payment_id")
    if not _safe_pay_url(pay_url):
        raise PlatformError("pay_url is missing or not an https URL")
    if isinstance(payment_id, bool) or not isinstance(payment_id, (str, int)):
        raise PlatformError("payment_id is missing")
    if not str(payment_id).strip():
        raise PlatformError("payment_id is empty")
    return PayLink(url=pay_url, platform_id=str(payment_id))


class HttpPaymentPlatform(SignedPoster):
    """POSTs to the payment platform; retries timeouts and 5xx, never 4xx."""

    what = "payment platform"

    def __init__(self, url: str, secret: str, *, callback_url: str | None, **options: Any) -> None:
        super().__init__(url.rstrip("/") + "/payments", secret, **options)
        self.callback_url = callback_url

    def body(self, request: PayLinkRequest) -> bytes:
        document = {
            "reference": request.reference,
            "amount": request.amount,
            "currency": "VND",
            "description": request.description,
            "expires_at": _utc_iso(request.expires_at),
            "callback_url": self.callback_url,
        }
        return json.dumps(document, ensure_ascii=False, sort_keys=True).encode()

    def create_link(self, request: PayLinkRequest) -> PayLink:
        try:
            response = self.post(self.body(request), request.reference)
        except (Refused, NoAnswer) as exc:
            raise PlatformError(str(exc)) from exc
        return _pay_link(response)


def payment_platform_from_env(env: Mapping[str, str] | None = None) -> PaymentPlatform | None:
    """The configured platform, or None (no `PAYMENT_PLATFORM_URL`: VietQR only)."""
    env = os.environ if env is None else env
    url = env.get("PAYMENT_PLATFORM_URL")
    if not url:
        return None
    secret = env.get("PAYMENT_PLATFORM_SECRET")
    if not secret:
        raise RuntimeError("PAYMENT_PLATFORM_URL is set but PAYMENT_PLATFORM_SECRET is not")
    raw_timeout = env.get("PAYMENT_PLATFORM_TIMEOUT")
    timeout = 5.0
    if raw_timeout:
        try:
            timeout = float(raw_timeout)
        except ValueError:
            raise RuntimeError("PAYMENT_PLATFORM_TIMEOUT must be a number of seconds") from None
        if not 0 < timeout < math.inf:
            raise RuntimeError("PAYMENT_PLATFORM_TIMEOUT must be a positive number of seconds")
    callback_url = env.get("PAYMENT_CALLBACK_URL") or None
    return HttpPaymentPlatform(url, secret, callback_url=callback_url, timeout=timeout)
