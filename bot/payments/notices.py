"""Proactive payment messages: the receipt once a fee is paid, and one reminder of an unpaid
fee before its deadline. Both go through the delivery pipeline with a key per payment, so each
is delivered once however many rounds ask."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.lifecycles import DOSSIER_IN_PROGRESS, PaymentStatus
from bot.core.models import Dossier, Payment
from bot.delivery.deliverer import Notice
from bot.dossiers.ownership import addressee
from bot.payments.settings import PaymentSettings
from bot.payments.texts import receipt_text, reminder_text
from bot.vietnamese.numbers import format_vnd

LOOKBACK = dt.timedelta(days=2)


@dataclass(frozen=True)
class PaymentMessage:
    citizen_id: int
    notice: Notice
    key: str


def _owed_by_citizens(session: Session, *conditions: Any) -> list[tuple[Payment, int]]:
    """(payment, who is told) pairs of the payments matching `conditions`, oldest first."""
    rows = session.execute(
        select(Payment, addressee())
        .join(Dossier, Dossier.id == Payment.dossier_id)
        .where(Dossier.citizen_id.is_not(None), *conditions)
        .order_by(Payment.id)
    ).all()
    return [(payment, citizen_id) for payment, citizen_id in rows]


def receipts_to_send(session: Session, now: dt.datetime) -> list[PaymentMessage]:
    """Receipts of the fees paid lately (a receipt is transactional: any hour)."""
    paid = _owed_by_citizens(
        session, Payment.status == PaymentStatus.PAID, Payment.updated_at >= now - LOOKBACK
    )
    return [
        PaymentMessage(
            citizen_id,
            Notice(
                text=receipt_text(payment),
                kind="payment_receipt",
                values={
                    "dossier_code": payment.reference,
                    "amount": format_vnd(payment.amount),
                    "receipt_no": payment.receipt_no,
                },
                subject=f"Biên lai lệ phí hồ sơ {payment.reference}",
            ),
            f"payment-receipt:{payment.id}",
        )
        for payment, citizen_id in paid
    ]


def reminders_to_send(
    session: Session, settings: PaymentSettings, now: dt.datetime
) -> list[PaymentMessage]:
    """Unpaid fees of dossiers still in progress whose deadline is near (the caller keeps the
    reminder hours)."""
    unpaid = _owed_by_citizens(
        session,
        Payment.status == PaymentStatus.REQUESTED,
        Payment.due_at > now,
        Payment.due_at <= now + dt.timedelta(days=settings.remind_days_before),
        Dossier.status.in_(DOSSIER_IN_PROGRESS),
    )
    return [
        PaymentMessage(
            citizen_id,
            Notice(
                text=reminder_text(payment),
                kind="payment_reminder",
                values={"dossier_code": payment.reference, "amount": format_vnd(payment.amount)},
                subject=f"Nhắc nộp lệ phí hồ sơ {payment.reference}",
            ),
            f"payment-reminder:{payment.id}",
        )
        for payment, citizen_id in unpaid
    ]
