"""Payment callbacks: proof that a fee arrived, checked before anything changes.

A callback is trusted only with a valid signature (`X-Signature`, `bot.core.signing.sign` with
the key PAYMENT_CALLBACK_SECRET) and a timestamp no older than
the configured age, so a captured callback cannot be replayed later. A trusted callback is
stored once per transaction id (a repeat changes nothing) and applied only when its reference
names a payable request and its amount is exactly what is owed; anything else is kept as a
mismatch for an officer (wrong amount, unknown reference, a second payment, a dossier withdrawn
before the money arrived) and never applied.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.core.clock import to_local
from bot.core.lifecycles import (
    PAYMENT,
    PAYMENT_CALLBACK,
    CallbackOutcome,
    PaymentStatus,
)
from bot.core.models import Payment, PaymentCallback
from bot.core.signing import sign
from bot.governance import audit

ACTOR = "payment-platform"
_TRANSACTION = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_REFERENCE = re.compile(r"[A-Za-z0-9 -]{1,40}")


@dataclass(frozen=True)
class PaymentNotice:
    """One successful transfer as the platform reports it."""

    transaction_id: str
    reference: str
    amount: int
    paid_at: dt.datetime | None  # naive UTC
    body: dict[str, Any]


class CallbackInvalid(ValueError):
    """The body is not a payment callback we understand (HTTP 400; nothing stored)."""


@dataclass(frozen=True)
class CallbackResult:
    outcome: str  # "applied", "duplicate" or "mismatch"
    reason: str | None = None
    payment_id: int | None = None


def signature_ok(
    secret: bytes, timestamp: str, signature: str, body: bytes, now: float, max_age: int
) -> bool:
    """The platform's signature over this body and timestamp, and the timestamp recent."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs(now - sent) > max_age:
        return False
    given = "sha256=" + signature.strip().removeprefix("sha256=").lower()
    expected = sign(secret, timestamp, body)
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode())


def parse_notice(body: bytes) -> PaymentNotice:
    """`{"transaction_id", "reference", "amount", "paid_at"?}`: a success notice of one transfer."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CallbackInvalid("body is not JSON") from exc
    if not isinstance(data, dict):
        raise CallbackInvalid("body is not a JSON object")
    transaction, reference, amount = (
        data.get(k) for k in ("transaction_id", "reference", "amount")
    )
    if not isinstance(transaction, str) or not _TRANSACTION.fullmatch(transaction):
        raise CallbackInvalid("transaction_id missing or malformed")
    if not isinstance(reference, str) or not _REFERENCE.fullmatch(reference.strip()):
        raise CallbackInvalid("reference missing or malformed")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise CallbackInvalid("amount must be a positive whole number of VND")
    if data.get("status", "success") != "success":
        raise CallbackInvalid("only successful payments are notified")
    return PaymentNotice(transaction, reference.strip().upper(), amount, _paid_at(data), data)


def _paid_at(data: dict[str, Any]) -> dt.datetime | None:
    value = data.get("paid_at")
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise CallbackInvalid("paid_at is not an ISO 8601 time") from exc
    if moment.tzinfo is None:
        raise CallbackInvalid("paid_at needs a time zone")
    return moment.astimezone(dt.timezone.utc).replace(tzinfo=None)


def apply_notice(session: Session, notice: PaymentNotice, now: dt.datetime) -> CallbackResult:
    """Record the callback once and apply it if it fits; the caller's unit of work commits."""
    seen = session.scalar(
        select(PaymentCallback.id).where(PaymentCallback.transaction_id == notice.transaction_id)
    )
    if seen is not None:
        return CallbackResult("duplicate")
    payment: Payment | None = session.scalar(
        select(Payment).where(Payment.reference == notice.reference).with_for_update()
    )
    reason = _mismatch(notice, payment)
    outcome = CallbackOutcome.MISMATCH if reason else CallbackOutcome.APPLIED
    row = PaymentCallback(
        transaction_id=notice.transaction_id,
        reference=notice.reference,
        amount=notice.amount,
        payment_id=payment.id if payment else None,
        outcome=outcome,
        reason=reason,
        body=notice.body,
        received_at=now,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return CallbackResult("duplicate")  # the same transaction, notified twice at once
    if payment is None or reason:
        return CallbackResult("mismatch", reason, payment.id if payment else None)
    PAYMENT.move(payment, PaymentStatus.PAID)
    payment.paid_at = notice.paid_at or now
    payment.transaction_id = notice.transaction_id
    payment.receipt_no = receipt_number(payment)
    ref, info = payment.reference, {"amount": payment.amount, "transaction": notice.transaction_id}
    audit.record(session, ACTOR, "payment.paid", target_type="dossier", target_id=ref, detail=info)
    return CallbackResult("applied", None, payment.id)


def _mismatch(notice: PaymentNotice, payment: Payment | None) -> str | None:
    if payment is None:
        return "no payment request has this reference"
    if payment.status == PaymentStatus.PAID:
        return f"already paid by transaction {payment.transaction_id}"
    if payment.status == PaymentStatus.VOID:
        return "the dossier was closed before the money arrived: refund to be decided"
    if notice.amount != payment.amount:
        return f"amount {notice.amount} differs from the {payment.amount} owed"
    return None


def receipt_number(payment: Payment) -> str:
    """BL-YYMMDD-NNNNNN: the local day of payment and the request's id, unique and short."""
    day = to_local(payment.paid_at).date() if payment.paid_at else None
    return f"BL-{day:%y%m%d}-{payment.id:06d}" if day else f"BL-{payment.id:06d}"


def resolve_mismatch(
    session: Session, callback_id: int, officer: str, note: str, now: dt.datetime
) -> bool:
    """An officer closes a mismatch with what was done about it (refund, manual match)."""
    row = session.get(PaymentCallback, callback_id, with_for_update=True)
    if row is None or not PAYMENT_CALLBACK.can_move(row.outcome, CallbackOutcome.RESOLVED):
        return False
    PAYMENT_CALLBACK.move(row, CallbackOutcome.RESOLVED)
    row.resolved_by, row.resolution, row.resolved_at = officer, note[:1000], now
    audit.record(
        session,
        officer,
        "payment.mismatch_resolved",
        target_type="payment_callback",
        target_id=row.transaction_id,
        detail={"reference": row.reference, "amount": row.amount},
    )
    return True
