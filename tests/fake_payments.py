"""A fake provincial payment platform on 127.0.0.1 (random port), speaking the wire format of
`connectors.payment_platform`, and a helper to sign the callbacks such a platform sends."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientSession, web

from connectors.signed_http import sign
from tests.fakes import FakeApi

SECRET = "payment-secret"
MAX_SKEW = 300  # seconds a request's X-Timestamp may be away from the fake's clock


@dataclass(frozen=True)
class PaymentCall:
    """One `POST /payments` as received, whatever the fake answered."""

    body: dict[str, Any]  # {} when the body is not a JSON object
    headers: dict[str, str]
    raw: bytes


@dataclass(frozen=True)
class Payment:
    payment_id: str
    pay_url: str
    body: dict[str, Any]


class FakePaymentPlatform(FakeApi):
    """`POST /payments`: checks signature and timestamp (401 otherwise), records each call in
    `.requests`, opens one payment per Idempotency-Key (`.payments`, keyed by it) and answers
    `{"pay_url": f"{url}/pay/{payment_id}", "payment_id": ...}`. `fail_next(n, status)` and
    `hang_next(n)` script the next n calls (in the order queued)."""

    def __init__(self, secret: str = SECRET, hang_delay: float = 1.0) -> None:
        super().__init__()
        self.secret = secret
        self.timeout_delay = hang_delay
        self.requests: list[PaymentCall] = []
        self.payments: dict[str, Payment] = {}
        self.pay_url_override: str | None = None  # answer this pay_url instead (bad platform)
        self.app.router.add_post("/payments", self.create)

    # FakeApi.fail_next takes behaviour strings; this platform's tests speak in statuses.
    def fail_next(self, n: int = 1, status: int = 503) -> None:  # type: ignore[override]
        super().fail_next(*[str(status)] * n)

    def hang_next(self, n: int = 1) -> None:
        """The next n calls sleep `hang_delay` seconds (past the client's timeout)."""
        super().fail_next(*["timeout"] * n)

    def _authentic(self, request: web.Request, raw: bytes) -> bool:
        timestamp = request.headers.get("X-Timestamp", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > MAX_SKEW:
            return False
        return request.headers.get("X-Signature") == sign(self.secret, timestamp, raw)

    async def create(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        body: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
        self.requests.append(PaymentCall(body, dict(request.headers), raw))
        self.calls.append(("payments", body))
        if not self._authentic(request, raw):
            return web.json_response({"error": "bad signature"}, status=401)
        behaviour = await self.misbehave()
        if behaviour == "timeout":
            return web.json_response({"error": "too late"}, status=504)
        if behaviour is not None:
            return web.json_response({"error": "scripted"}, status=int(behaviour))
        key = request.headers.get("Idempotency-Key", "")
        if not key or not body.get("reference") or not isinstance(body.get("amount"), int):
            return web.json_response({"error": "bad request"}, status=400)
        payment = self.payments.get(key)
        if payment is None:
            payment_id = f"pay-{len(self.payments) + 1}"
            pay_url = self.pay_url_override or f"{self.url}/pay/{payment_id}"
            payment = self.payments[key] = Payment(payment_id, pay_url, body)
            self.arrivals.append(time.monotonic())
        return web.json_response({"pay_url": payment.pay_url, "payment_id": payment.payment_id})

    async def settle(
        self, reference: str, callback_secret: str, amount: int | None = None, tx: str = ""
    ) -> tuple[int, dict[str, Any]]:
        """The citizen paid on the platform: post the signed callback to the `callback_url`
        the payment was opened with (the amount asked, unless told otherwise), as a platform
        does; returns the endpoint's status and JSON answer."""
        opened = self.payments[reference].body
        body = {
            "transaction_id": tx or f"TX-{reference}",
            "reference": reference,
            "amount": opened["amount"] if amount is None else amount,
            "paid_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        raw, headers = signed_callback(callback_secret, body)
        url = opened["callback_url"]
        async with ClientSession() as client, client.post(url, data=raw, headers=headers) as answer:
            return answer.status, await answer.json()


def signed_callback(
    secret: str, body: dict[str, Any], timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """The body and headers a platform sends with a payment callback, signed with `secret`."""
    raw = json.dumps(body, ensure_ascii=False, sort_keys=True).encode()
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    headers = {
        "Content-Type": "application/json",
        "X-Timestamp": stamp,
        "X-Signature": sign(secret, stamp, raw),
    }
    return raw, headers
