"""Submitted dossiers: consent, idempotent submission, codes, status, cancellation.

Submission is one transaction: dossier, consent, status history and the draft's state change
commit together or not at all. The draft id is the idempotency key, so a second confirmation
or a retry after a timeout returns the dossier already created.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.catalogue.model import Catalogue, JoinedTrigger, Service
from bot.core.clock import to_local, utcnow
from bot.core.lifecycles import (
    DOSSIER,
    DOSSIER_CANCELLABLE,
    DRAFT,
    REMINDER_CONVERTIBLE,
    Actor,
    DossierStatus,
    DraftState,
    ReminderState,
)
from bot.core.models import (
    Consent,
    Dossier,
    DossierCounter,
    DossierDraft,
    DossierStatusChange,
    Payment,
    Reminder,
)
from bot.dossiers.gateway import DossierGateway, GatewayError, SubmissionPayload
from bot.dossiers.ownership import owned_by
from bot.dossiers.workdays import add_working_days
from bot.governance import data_access
from bot.identity.family import guardian_relation
from bot.payments.platform import PaymentPlatform
from bot.payments.requests import request_payment, void_unpaid
from bot.payments.settings import PaymentSettings

log = logging.getLogger(__name__)

# One per DossierStatus; looked up by stored status strings (a member equals its value).
STATUS_LABELS: dict[str, str] = {
    DossierStatus.PREPARED: "Đã chuẩn bị, chờ Ông/Bà đến nộp trực tiếp",
    DossierStatus.RECEIVED: "Đã tiếp nhận",
    DossierStatus.PROCESSING: "Đang xử lý",
    DossierStatus.NEEDS_INFO: "Cần bổ sung thông tin",
    DossierStatus.COMPLETED: "Đã có kết quả",
    DossierStatus.REJECTED: "Bị từ chối",
    DossierStatus.CANCELLED: "Đã hủy",
}


def dossier_prefix() -> str:
    return os.environ.get("DOSSIER_PREFIX", "DLK")


def next_code(session: Session, day: dt.date) -> str:
    """PREFIX-YYMMDD-NNNNN from a per-day counter row (the UPDATE serialises writers)."""
    if session.get(DossierCounter, day) is None:
        try:
            with session.begin_nested():
                session.add(DossierCounter(day=day, last=0))
        except IntegrityError:
            pass  # another writer created today's row first
    session.execute(
        update(DossierCounter).where(DossierCounter.day == day).values(last=DossierCounter.last + 1)
    )
    last = session.scalar(select(DossierCounter.last).where(DossierCounter.day == day))
    return f"{dossier_prefix()}-{day:%y%m%d}-{last:05d}"


@dataclass(frozen=True)
class Submission:
    dossier: Dossier
    already_submitted: bool
    joined: list[Dossier]
    payment: Payment | None = None  # the fee to pay online, if the dossier owes one


def expected_date(service: Service, submitted: dt.date) -> dt.date:
    if service.processing_time.working_days:
        return add_working_days(submitted, service.processing_time.days)
    return submitted + dt.timedelta(days=service.processing_time.days)


def _create(
    session: Session,
    service: Service,
    *,
    citizen_id: int,
    business_id: int | None,
    fields: dict[str, Any],
    channel: str,
    key: str,
    status: DossierStatus,
    now: dt.datetime,
) -> Dossier:
    dossier = Dossier(
        code=next_code(session, now.date()),
        service_code=service.code,
        citizen_id=citizen_id,
        business_id=business_id,
        status=status,
        fields=fields,
        channel=channel,
        idempotency_key=key,
        submitted_at=now,
        expected_on=expected_date(service, now.date()),
    )
    session.add(dossier)
    session.flush()
    session.add(DossierStatusChange(dossier_id=dossier.id, status=status, changed_by="citizen"))
    return dossier


def submit_draft(
    session: Session,
    catalogue: Catalogue,
    draft: DossierDraft,
    gateway: DossierGateway,
    shown: str,
    now: dt.datetime | None = None,
    platform: PaymentPlatform | None = None,
    payment_settings: PaymentSettings | None = None,
    filed_by: int | None = None,
) -> Submission:
    """Create the dossier and consent for a completed draft, once.

    Level-3 services go to the gateway; level-2 services are stored as 'prepared' for the
    in-person step. Level-4 services joined to this one are created in the same transaction,
    and so is the payment request of a fee (`bot.payments.requests`).

    `filed_by` is the citizen who consents, when not the draft's own (a parent filing for a
    minor child, `bot.identity.family`): the dossier stays the child's, the consent is the
    parent's with `acting_for_citizen_id` = the child. PermissionError if the data does not
    (or no longer) name them the child's parent.
    """
    key = f"draft:{draft.id}"
    existing = session.scalar(select(Dossier).where(Dossier.idempotency_key == key))
    settings = payment_settings or PaymentSettings.from_env()
    if existing is not None:
        payment = request_payment(session, catalogue, existing, settings, platform, utcnow())
        return Submission(existing, already_submitted=True, joined=[], payment=payment)
    service = catalogue.service(draft.service_code)
    now = now or utcnow()
    acting_as = None
    if filed_by is not None and filed_by != draft.citizen_id:
        acting_as = guardian_relation(session, filed_by, draft.citizen_id, to_local(now).date())
        if acting_as is None:
            raise PermissionError("the filer is not a named parent of this minor")
    status = DossierStatus.RECEIVED if service.level >= 3 else DossierStatus.PREPARED
    dossier = _create(
        session,
        service,
        citizen_id=draft.citizen_id,
        business_id=draft.business_id,
        fields={"values": draft.values, "typed": draft.typed, "record_id": draft.record_id},
        channel=draft.channel,
        key=key,
        status=status,
        now=now,
    )
    session.add(
        Consent(
            citizen_id=draft.citizen_id if acting_as is None else filed_by,
            acting_for_citizen_id=None if acting_as is None else draft.citizen_id,
            service_code=service.code,
            dossier_id=dossier.id,
            shown={
                "summary": shown,
                "values": draft.values,
                **({} if acting_as is None else {"acting_as": acting_as}),
            },
            channel=draft.channel,
            created_at=now,
        )
    )
    if service.level >= 3:
        try:
            gateway.submit(SubmissionPayload.of(dossier, service))
        except GatewayError:
            log.exception("dossier gateway refused or failed for %s", dossier.code)
            raise
    DRAFT.move(draft, DraftState.SUBMITTED)
    draft.dossier_id = dossier.id
    _mark_reminders_converted(session, service, draft)
    joined = [
        _create(
            session,
            other,
            citizen_id=draft.citizen_id,
            business_id=None,
            fields={"values": draft.values, "joined_to": dossier.code},
            channel="system",
            key=f"joined:{other.code}:{dossier.id}",
            status=DossierStatus.RECEIVED,
            now=now,
        )
        for other in catalogue.services
        if isinstance(other.trigger, JoinedTrigger) and other.trigger.after_service == service.code
    ]
    data_access.note_sent(session, catalogue, dossier, joined)  # "who has used my data"
    payment = request_payment(session, catalogue, dossier, settings, platform, now)
    return Submission(dossier, already_submitted=False, joined=joined, payment=payment)


def _mark_reminders_converted(session: Session, service: Service, draft: DossierDraft) -> None:
    """The reminders that led here did their job: count them as converted, send no more."""
    subject_type, subject_id = (
        ("business", draft.business_id) if draft.business_id else ("citizen", draft.citizen_id)
    )
    session.execute(
        update(Reminder)
        .where(
            Reminder.subject_type == subject_type,
            Reminder.subject_id == subject_id,
            Reminder.service_code == service.code,
            Reminder.state.in_(REMINDER_CONVERTIBLE),
        )
        .values(state=ReminderState.CONVERTED, updated_at=utcnow())
    )


def dossiers_of(session: Session, citizen_id: int, limit: int = 10) -> list[Dossier]:
    return list(
        session.scalars(
            select(Dossier)
            .where(owned_by(citizen_id))
            .order_by(Dossier.submitted_at.desc(), Dossier.id.desc())
            .limit(limit)
        )
    )


def own_dossier(session: Session, citizen_id: int, code: str) -> Dossier | None:
    """A dossier by code, only if it belongs to this citizen or they filed it for their child
    (else None, like a wrong code)."""
    dossier: Dossier | None = session.scalar(
        select(Dossier).where(Dossier.code == code.strip().upper(), owned_by(citizen_id))
    )
    return dossier


def cancel(session: Session, dossier: Dossier, actor: str = "citizen") -> bool:
    """Withdraw a dossier that no officer has started processing."""
    if dossier.status not in DOSSIER_CANCELLABLE:
        return False
    DOSSIER.move(dossier, DossierStatus.CANCELLED, by=Actor.CITIZEN)
    void_unpaid(session, dossier)
    session.add(
        DossierStatusChange(dossier_id=dossier.id, status=DossierStatus.CANCELLED, changed_by=actor)
    )
    return True
