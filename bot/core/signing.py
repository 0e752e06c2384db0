"""The signature the province's systems and we exchange on HTTP requests: `sha256=<hex>`, an
HMAC-SHA256 over `X-Timestamp` + "." + the raw body. One formula for what we send (the dossier
gateway, the payment platform: `connectors/signed_http.py`) and what we check (payment
callbacks: `bot.payments.callbacks`)."""

from __future__ import annotations

import hashlib
import hmac


def sign(secret: str | bytes, timestamp: str, body: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    mac = hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()
