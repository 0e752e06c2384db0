"""The payment request of a submitted dossier: how much is owed, by when, and where to pay.

A request is made in the submission's own transaction, once per dossier (the dossier code is
its reference and the platform's idempotency key). Dossiers prepared for an in-person visit
(level 2) pay at the office and get none; nor does a fee the catalogue waives. When a dossier
is closed (withdrawn, refused, or completed after paying at the counter) its unpaid request
becomes void, so it is neither reminded nor counted as owed.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.catalogue.model import Catalogue, Service
from bot.core.clock import local_to_stored, to_local
from bot.core.lifecycles import PAYMENT, DossierStatus, PaymentStatus
from bot.core.models import Citizen, Dossier, Payment
from bot.dossiers.ownership import owned_by
from bot.dossiers.workdays import add_working_days
from bot.payments.platform import PayLinkRequest, PaymentPlatform, PlatformError
from bot.payments.settings import PaymentSettings
from bot.reminders.due import DueItem, service_due
from bot.vietnamese.vn import strip_diacritics

log = logging.getLogger(__name__)
END_OF_DAY = dt.time(23, 59, 59)


def amount_owed(service: Service, due: DueItem | None, today: dt.date) -> int:
    """The catalogue's fee, or 0 when it is waived for a dossier filed by its deadline."""
    amount = service.fee.amount or 0
    on_time = due is not None and due.due.deadline >= today
    return 0 if service.fee.exempt_on_time and on_time else amount


def request_payment(
    session: Session,
    catalogue: Catalogue,
    dossier: Dossier,
    settings: PaymentSettings,
    platform: PaymentPlatform | None,
    now: dt.datetime,
) -> Payment | None:
    """The dossier's payment request, created on first call; None when nothing is owed."""
    existing = payment_of(session, dossier.id)
    if existing is not None or dossier.status != DossierStatus.RECEIVED:
        return existing
    service = catalogue.service(dossier.service_code)
    today = to_local(now).date()
    citizen = session.get(Citizen, dossier.citizen_id) if dossier.citizen_id else None
    due = None
    if service.fee.exempt_on_time and citizen is not None:
        due = service_due(session, catalogue, citizen, service.code, today)
    amount = amount_owed(service, due, today)
    if amount <= 0:
        return None
    deadline = add_working_days(today, settings.pay_working_days)
    payment = Payment(
        dossier_id=dossier.id,
        reference=dossier.code,
        amount=amount,
        status=PaymentStatus.REQUESTED,
        due_at=local_to_stored(deadline, END_OF_DAY),
    )
    if platform is not None:
        payment.pay_url = _pay_link(platform, payment, service)
    session.add(payment)
    session.flush()
    return payment


def _pay_link(platform: PaymentPlatform, payment: Payment, service: Service) -> str | None:
    """A pay link if the platform gives one now; the VietQR code serves without it."""
    description = strip_diacritics(f"Le phi {service.short_name} {payment.reference}")
    try:
        link = platform.create_link(
            PayLinkRequest(payment.reference, payment.amount, description, payment.due_at)
        )
    except PlatformError as exc:
        log.warning("no pay link for %s: %s", payment.reference, exc)
        return None
    return link.url


def payment_of(session: Session, dossier_id: int) -> Payment | None:
    found: Payment | None = session.scalar(select(Payment).where(Payment.dossier_id == dossier_id))
    return found


def payments_of(session: Session, citizen_id: int, limit: int = 5) -> list[tuple[Payment, Dossier]]:
    """The citizen's payment requests, unpaid first, newest first: what "nộp phí" is about."""
    rows = session.execute(
        select(Payment, Dossier)
        .join(Dossier, Dossier.id == Payment.dossier_id)
        .where(owned_by(citizen_id), Payment.status != PaymentStatus.VOID)
        .order_by((Payment.status == PaymentStatus.REQUESTED).desc(), Payment.id.desc())
        .limit(limit)
    ).all()
    return [(payment, dossier) for payment, dossier in rows]


def void_unpaid(session: Session, dossier: Dossier) -> None:
    """A closed dossier owes nothing more online (a paid fee stays paid: a refund is an
    officer's decision)."""
    payment = payment_of(session, dossier.id)
    if payment is not None and PAYMENT.can_move(payment.status, PaymentStatus.VOID):
        PAYMENT.move(payment, PaymentStatus.VOID)
