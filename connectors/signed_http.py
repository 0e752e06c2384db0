"""Signed, idempotent JSON POSTs to the province's systems (the dossier gateway, the payment
platform): one signature scheme and one retry policy for both.

`X-Signature` is `bot.core.signing.sign` (HMAC-SHA256 over `X-Timestamp` + "." + body); the
`Idempotency-Key` lets a retry after a timeout reach the other side without doing the work
twice. Transport errors and 5xx are retried with exponential backoff and jitter; a 4xx is final.
"""

from __future__ import annotations

import logging
import random
import time

import httpx

from bot.core.signing import sign

log = logging.getLogger(__name__)


__all__ = ["NoAnswer", "Refused", "SignedPoster", "sign"]


class Refused(RuntimeError):
    """The other side answered 4xx: retrying would not help."""

    def __init__(self, status: int) -> None:
        super().__init__(f"rejected with HTTP {status}")
        self.status = status


class NoAnswer(RuntimeError):
    """Every attempt timed out, failed to connect or got a 5xx."""


class SignedPoster:
    """One endpoint of a province system, posted to with signed, idempotent, retried requests;
    the clients of each system subclass it and name themselves in `what` (for the logs)."""

    what = "province system"

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
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.url, self.secret = url, secret
        self.attempts, self.backoff = attempts, backoff
        self.client = client or httpx.Client(timeout=timeout)

    def post(self, body: bytes, idempotency_key: str) -> httpx.Response:
        """The first 2xx answer; Refused on a 4xx, NoAnswer once the attempts are spent."""
        for attempt in range(1, self.attempts + 1):
            timestamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "Idempotency-Key": idempotency_key,
                "X-Timestamp": timestamp,
                "X-Signature": sign(self.secret, timestamp, body),
            }
            try:
                response = self.client.post(self.url, content=body, headers=headers)
            except httpx.TransportError as exc:
                reason = type(exc).__name__
            else:
                if response.status_code < 300:
                    return response
                if response.status_code < 500:
                    raise Refused(response.status_code)
                reason = f"HTTP {response.status_code}"
            log.warning("%s attempt %d/%d failed: %s", self.what, attempt, self.attempts, reason)
            if attempt < self.attempts:
                time.sleep(self.backoff * 2 ** (attempt - 1) * (1 + random.random() / 2))
        raise NoAnswer(f"no answer after {self.attempts} attempts")

    def close(self) -> None:
        self.client.close()
