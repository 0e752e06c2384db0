"""Real SMS gateways behind `bot.delivery.sms.SmsGateway`. One is implemented: eSMS.vn (VIHAT).

eSMS: `POST {ESMS_BASE_URL}/MainService.svc/json/SendMultipleMessage_V4_post_json/`, one
customer-care (CSKH, SmsType 2) message per request, unaccented (IsUnicode 0). CodeResult 100
means accepted; 124 means this RequestId was already accepted, i.e. our earlier attempt went
through, so it counts as sent (idempotent retries). https://developers.esms.vn
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import httpx

from bot.delivery.sending import SendError
from bot.delivery.sms import OutboxSmsGateway, SmsGateway
from connectors.provider_http import check_status, provider_errors

NAME = "sms"
SEND_PATH = "/MainService.svc/json/SendMultipleMessage_V4_post_json/"
ACCEPTED = "100"
DUPLICATE_REQUEST = "124"
# CodeResult → why; all of them fail the same way if repeated, so none is retried.
ESMS_ERRORS = {
    "99": "number blocked or unknown error",
    "101": "wrong ApiKey/SecretKey",
    "103": "balance too low",
    "104": "brandname not registered",
    "108": "invalid phone number",
    "140": "server IP not whitelisted",
    "146": "content does not match a registered CSKH template",
    "177": "brandname not registered on this network",
}


class EsmsGateway:
    """eSMS.vn customer-care SMS; synchronous like the protocol (callers use a thread)."""

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        brandname: str,
        sms_type: str = "2",
        base_url: str = "https://rest.esms.vn",
        sandbox: bool = False,
        timeout: float = 10.0,
    ) -> None:
        self.api_key, self.secret_key, self.brandname = api_key, secret_key, brandname
        self.sms_type, self.sandbox = sms_type, sandbox
        self.client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> EsmsGateway:
        missing = [
            k for k in ("ESMS_API_KEY", "ESMS_SECRET_KEY", "ESMS_BRANDNAME") if not env.get(k)
        ]
        if missing:
            raise RuntimeError(f"SMS_PROVIDER=esms needs {', '.join(missing)}")
        return cls(
            env["ESMS_API_KEY"],
            env["ESMS_SECRET_KEY"],
            env["ESMS_BRANDNAME"],
            sms_type=env.get("ESMS_SMS_TYPE", "2"),
            base_url=env.get("ESMS_BASE_URL", "https://rest.esms.vn"),
            sandbox=env.get("ESMS_SANDBOX", "0") == "1",
            timeout=float(env.get("SMS_TIMEOUT", "10")),
        )

    def send(self, to: str, text: str, request_id: str | None = None) -> str | None:
        body = {
            "ApiKey": self.api_key,
            "SecretKey": self.secret_key,
            "Phone": to,
            "Content": text,
            "Brandname": self.brandname,
            "SmsType": self.sms_type,
            "IsUnicode": "0",
            "Sandbox": "1" if self.sandbox else "0",
        }
        if request_id:
            body["RequestId"] = request_id[:50]
        with provider_errors(NAME, "esms"):
            answer = self.client.post(SEND_PATH, json=body)
        check_status(answer, NAME, "esms")
        try:
            data = answer.json()
        except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
            raise SendError(NAME, "retry", "esms answer is not JSON", answer.status_code) from exc
        if not isinstance(data, dict):
            raise SendError(NAME, "retry", "esms answer is not a JSON object", answer.status_code)
        code = _scalar(data.get("CodeResult"))
        if code in (ACCEPTED, DUPLICATE_REQUEST):
            return _scalar(data.get("SMSID")) or request_id or ""
        reason = ESMS_ERRORS.get(code, "unknown CodeResult")
        raise SendError(NAME, "permanent", f"esms {code}: {reason}", answer.status_code)

    def close(self) -> None:
        self.client.close()


def _scalar(value: object) -> str:
    """A string or number from the answer as text ("100" and 100 alike); "" for anything else."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return ""
    return str(value)[:100]


def default_gateway() -> SmsGateway:
    """The gateway chosen by SMS_PROVIDER; unset, the outbox (`bot.delivery.sms`)."""
    name = os.environ.get("SMS_PROVIDER", "outbox")
    if name == "outbox":
        return OutboxSmsGateway()
    if name == "esms":
        return EsmsGateway.from_env()
    raise RuntimeError(f"unknown SMS_PROVIDER {name!r} (known: outbox, esms)")
