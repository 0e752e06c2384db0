"""Dossier queue, detail and status changes.

A status change follows the dossier lifecycle's officer moves (`bot.core.lifecycles.DOSSIER`) and
writes the dossier's new status and a `DossierStatusChange` row in one transaction; that row is
what the scheduler's status notices pick up to tell the citizen.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.catalogue.fields import display_value, validator_of
from bot.catalogue.model import Catalogue
from bot.core.lifecycles import (
    DOSSIER,
    DOSSIER_AWAITING_OFFICER,
    DOSSIER_FINISHED,
    Actor,
    DossierStatus,
    ForbiddenTransition,
)
from bot.core.models import Citizen, Consent, Dossier, DossierStatusChange, Payment
from bot.dossiers.submission import STATUS_LABELS
from bot.governance import audit
from bot.payments.requests import payment_of, void_unpaid
from bot.payments.texts import PAYMENT_LABELS
from bot.vietnamese.numbers import format_vnd
from console.masking import SENSITIVE_VALIDATORS, Masker, citizen_pairs, mask_email
from console.timefmt import day_start_utc, parse_day

NOTE_REQUIRED = frozenset({DossierStatus.NEEDS_INFO, DossierStatus.REJECTED})


@dataclass(frozen=True)
class DossierFilter:
    service: str = ""
    status: str = ""  # a status, "open" (default) or "all"
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    code: str = ""
    payment: str = ""  # a PaymentStatus, "none" (nothing to pay online) or "" (any)
    page: int = 1

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> DossierFilter:
        status = params.get("status", "open")
        payment = params.get("payment", "")
        page = params.get("page", "1")
        return cls(
            service=params.get("service", "")[:40],
            status=status if status in (*STATUS_LABELS, "open", "all") else "open",
            date_from=parse_day(params.get("from")),
            date_to=parse_day(params.get("to")),
            code=params.get("code", "").strip().upper()[:24],
            payment=payment if payment in (*PAYMENT_LABELS, "none") else "",
            page=max(int(page), 1) if page.isdigit() else 1,
        )

    def query_string(self, **extra: str) -> str:
        values = {
            "service": self.service,
            "status": self.status,
            "from": self.date_from.isoformat() if self.date_from else "",
            "to": self.date_to.isoformat() if self.date_to else "",
            "code": self.code,
            "payment": self.payment,
            **extra,
        }
        return urlencode({k: v for k, v in values.items() if v})


def dossier_query(flt: DossierFilter):
    """Rows of (dossier, citizen name, payment status or None) matching the filter."""
    query = (
        select(Dossier, Citizen.full_name, Payment.status)
        .outerjoin(Citizen, Citizen.id == Dossier.citizen_id)
        .outerjoin(Payment, Payment.dossier_id == Dossier.id)
    )
    if flt.payment == "none":
        query = query.where(Payment.id.is_(None))
    elif flt.payment:
        query = query.where(Payment.status == flt.payment)
    if flt.service:
        query = query.where(Dossier.service_code == flt.service)
    if flt.status == "open":
        query = query.where(Dossier.status.in_(DOSSIER_AWAITING_OFFICER))
    elif flt.status != "all":
        query = query.where(Dossier.status == flt.status)
    if flt.date_from:
        query = query.where(Dossier.submitted_at >= day_start_utc(flt.date_from))
    if flt.date_to:
        query = query.where(
            Dossier.submitted_at < day_start_utc(flt.date_to + dt.timedelta(days=1))
        )
    if flt.code:
        query = query.where(Dossier.code == flt.code)
    return query


def queue(
    session: Session, flt: DossierFilter, page_size: int = 50
) -> tuple[list[tuple[Dossier, str, str | None]], bool]:
    """Oldest first (the order they must be handled in); masked citizen names."""
    rows = session.execute(
        dossier_query(flt)
        .order_by(Dossier.submitted_at, Dossier.id)
        .offset((flt.page - 1) * page_size)
        .limit(page_size + 1)
    ).all()
    masker = Masker()
    shown = [(d, masker.name(name), paid) for d, name, paid in rows[:page_size]]
    return shown, len(rows) > page_size


def status_counts(session: Session) -> dict[str, int]:
    return dict(
        session.execute(select(Dossier.status, func.count()).group_by(Dossier.status)).all()
    )


@dataclass(frozen=True)
class FieldLine:
    label: str
    value: str
    typed: bool


@dataclass
class DossierView:
    dossier: Dossier
    service_name: str
    citizen: str
    fields: list[FieldLine]
    consent: Consent | None
    consent_text: str
    history: list[DossierStatusChange]
    next_statuses: tuple[DossierStatus, ...]
    revealed: bool
    payment: Payment | None = None

    @property
    def timeline(self) -> list[tuple[dt.datetime, str]]:
        """Status changes and the fee's steps, oldest first."""
        entries = [(h.created_at, _history_line(h)) for h in self.history]
        p = self.payment
        if p is not None:
            entries.append((p.created_at, f"Yêu cầu nộp lệ phí {format_vnd(p.amount)}"))
            if p.paid_at is not None:
                entries.append(
                    (p.paid_at, f"Đã nộp lệ phí {format_vnd(p.amount)} · biên lai {p.receipt_no}")
                )
        return sorted(entries, key=lambda e: e[0])


def _history_line(change: DossierStatusChange) -> str:
    line = f"{STATUS_LABELS.get(change.status, change.status)} · {change.changed_by}"
    return line + (f": {change.note}" if change.note else "")


def dossier_view(
    session: Session, catalogue: Catalogue, dossier: Dossier, revealed: bool
) -> DossierView:
    codes = {s.code: s for s in catalogue.services}
    service = codes.get(dossier.service_code)
    citizen = session.get(Citizen, dossier.citizen_id) if dossier.citizen_id else None
    masker = Masker(citizen_pairs(citizen) if citizen else [], revealed)
    values = dict((dossier.fields or {}).get("values") or {})
    typed = set((dossier.fields or {}).get("typed") or [])
    lines: list[FieldLine] = []
    for field in service.fields if service else []:
        raw = values.pop(field.key, None)
        shown = display_value(field, raw)
        kind = validator_of(field)
        if not revealed and raw and kind in SENSITIVE_VALIDATORS:
            shown = SENSITIVE_VALIDATORS[kind](str(raw))
        elif not revealed and raw and kind == "email":
            shown = mask_email(str(raw))
        lines.append(FieldLine(field.label, masker.text(shown), field.key in typed))
    lines.extend(FieldLine(k, masker.text(str(v)), k in typed) for k, v in values.items())
    consent = session.scalar(
        select(Consent).where(Consent.dossier_id == dossier.id).order_by(Consent.id.desc())
    )
    consent_text = masker.text(str((consent.shown or {}).get("summary", ""))) if consent else ""
    who = f"{masker.name(citizen.full_name)} — {masker.text(citizen.cccd)}" if citizen else "—"
    return DossierView(
        dossier,
        service.name if service else dossier.service_code,
        who,
        lines,
        consent,
        consent_text,
        list(dossier.history),
        DOSSIER.targets(dossier.status, by=Actor.OFFICER),
        revealed,
        payment_of(session, dossier.id),
    )


def change_status(
    session: Session, dossier_id: int, status: str, note: str, officer: str
) -> str | None:
    """Move a dossier along its allowed transitions; returns an error message, or None."""
    dossier = session.get(Dossier, dossier_id, with_for_update=True)
    if dossier is None:
        return "Không tìm thấy hồ sơ."
    try:
        target = DOSSIER.check(dossier.status, status, by=Actor.OFFICER)
    except ForbiddenTransition:
        current = STATUS_LABELS.get(dossier.status, dossier.status)
        return f"Không thể chuyển hồ sơ từ trạng thái «{current}» sang trạng thái đã chọn."
    note = " ".join(note.split())[:1000]
    if target in NOTE_REQUIRED and not note:
        return "Cần ghi rõ lý do hoặc thông tin công dân phải bổ sung."
    previous, dossier.status = dossier.status, target
    if target in DOSSIER_FINISHED:
        void_unpaid(session, dossier)  # a paid fee stays paid: a refund is decided apart
    session.add(
        DossierStatusChange(
            dossier_id=dossier.id, status=target, note=note or None, changed_by=officer
        )
    )
    audit.record(
        session,
        officer,
        "dossier.status",
        target_type="dossier",
        target_id=dossier.code,
        detail={"from": previous, "to": target},
    )
    return None
