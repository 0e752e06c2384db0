"""The provincial procedure system's HTTP API, as a `bot.dossiers.gateway.DossierGateway`.

`DOSSIER_GATEWAY_URL` switches to it: JSON POST signed with HMAC-SHA256
(`X-Signature: sha256=<hex>` over timestamp + "." + body, key `DOSSIER_GATEWAY_SECRET`), an
`Idempotency-Key` header so retries after a timeout never create a second dossier there.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import random
import time
from dataclasses import asdict

import httpx

from bot.dossiers.gateway import DossierGateway, EmbeddedGateway, GatewayError, SubmissionPayload

log = logging.getLogger(__name__)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class HttpGateway:
    """POSTs to the provincial system; retries timeouts and 5xx, never 4xx."""

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        timeout: float = 5.0,
        attempts: int = 3,
        backoff: float = 0.5,
        client: httpx.Client | None = None,
    ) -> None:
        self.url, self.secret = url, secret
        self.attempts, self.backoff = attempts, backoff
        self.client = client or httpx.Client(timeout=timeout)

    def submit(self, payload: SubmissionPayload) -> None:
        body = json.dumps(asdict(payload), ensure_ascii=False, sort_keys=True).encode()
        for attempt in range(1, self.attempts + 1):
            timestamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "Idempotency-Key": payload.idempotency_key,
                "X-Timestamp": timestamp,
                "X-Signature": sign(self.secret, timestamp, body),
            }
            try:
                response = self.client.post(self.url, content=body, headers=headers)
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}"
            else:
                if response.status_code < 300:
                    return
                if response.status_code < 500:
                    raise GatewayError(f"rejected with HTTP {response.status_code}")
                reason = f"HTTP {response.status_code}"
            log.warning("dossier gateway attempt %d/%d failed: %s", attempt, self.attempts, reason)
            if attempt < self.attempts:
                time.sleep(self.backoff * 2 ** (attempt - 1) * (1 + random.random() / 2))
        raise GatewayError(f"no answer after {self.attempts} attempts")


def gateway_from_env() -> DossierGateway:
    url = os.environ.get("DOSSIER_GATEWAY_URL")
    if not url:
        return EmbeddedGateway()
    secret = os.environ.get("DOSSIER_GATEWAY_SECRET")
    if not secret:
        raise RuntimeError("DOSSIER_GATEWAY_URL is set but DOSSIER_GATEWAY_SECRET is not")
    return HttpGateway(url, secret)
