"""Pre-filled dossier drafts (level 2): built from registry data, completed in conversation.

A draft lives in the database, keyed by the conversation, so a restart loses nothing and the
values can be re-checked at submission. Values come from the catalogue's field sources.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.catalogue.fields import clean_value, display_value
from bot.catalogue.model import Catalogue, DossierField, Service
from bot.core.lifecycles import DRAFT, DraftState
from bot.core.models import Business, Citizen, DossierDraft, Record
from bot.governance import data_access
from bot.governance.pii import mask_cccd, mask_phone
from bot.vietnamese.vn import fold

# Identity data comes from the national population database: it is corrected at the police
# office, not in a chat.
LOCKED_SOURCES = {"citizen.cccd", "citizen.full_name", "citizen.date_of_birth", "citizen.sex"}


def _source_value(
    source: str, citizen: Citizen, business: Business | None, record: Record | None
) -> str | None:
    kind, _, attr = source.partition(".")
    if kind == "citizen":
        value = getattr(citizen, attr)
    elif kind == "business":
        value = getattr(business, attr) if business else None
    elif record is None:
        value = None
    elif attr.startswith("attributes."):
        value = (record.attributes or {}).get(attr.split(".", 1)[1])
    else:
        value = getattr(record, attr)
    if isinstance(value, dt.date):
        return value.isoformat()
    return None if value in (None, "") else str(value)


def _subject(
    session: Session, service: Service, citizen: Citizen
) -> tuple[Business | None, Record | None]:
    """The business (for business services) and the record that triggers the service."""
    kind = service.record_kind()
    business = None
    if service.subject == "business":
        businesses = list(
            session.scalars(
                select(Business)
                .where(Business.representative_id == citizen.id)
                .order_by(Business.id)
            )
        )
        for candidate in businesses:
            record = _latest_record(session, kind, business_id=candidate.id)
            if record is not None:
                return candidate, record
        return (businesses[0] if businesses else None), None
    return business, _latest_record(session, kind, citizen_id=citizen.id)


def _latest_record(session: Session, kind: str | None, **owner: int) -> Record | None:
    if kind is None:
        return None
    ((column, value),) = owner.items()
    record: Record | None = session.scalar(
        select(Record)
        .where(Record.kind == kind, getattr(Record, column) == value)
        .order_by(Record.valid_until.desc(), Record.event_date.desc(), Record.id.desc())
        .limit(1)
    )
    return record


def open_draft(session: Session, channel: str, sender_id: str) -> DossierDraft | None:
    draft: DossierDraft | None = session.scalar(
        select(DossierDraft)
        .where(
            DossierDraft.channel == channel,
            DossierDraft.channel_user_id == sender_id,
            DossierDraft.state == DraftState.OPEN,
        )
        .order_by(DossierDraft.id.desc())
        .limit(1)
    )
    return draft


def start_draft(
    session: Session,
    catalogue: Catalogue,
    citizen: Citizen,
    service_code: str,
    channel: str,
    sender_id: str,
) -> DossierDraft:
    """A new draft pre-filled from the registry; the sender's earlier open draft is dropped.
    What pre-filled it is audited for the citizen (`bot.governance.data_access`)."""
    previous = open_draft(session, channel, sender_id)
    if previous is not None:
        abandon(previous)
    service = catalogue.service(service_code)
    business, record = _subject(session, service, citizen)
    values = {
        f.key: (None if f.source == "ask" else _source_value(f.source, citizen, business, record))
        for f in service.fields
    }
    draft = DossierDraft(
        channel=channel,
        channel_user_id=sender_id,
        citizen_id=citizen.id,
        business_id=business.id if business else None,
        record_id=record.id if record else None,
        service_code=service_code,
        values=values,
        typed=[],
        state=DraftState.OPEN,
    )
    session.add(draft)
    session.flush()
    data_access.note_prefill(session, catalogue, service, draft)
    return draft


def missing_fields(service: Service, draft: DossierDraft) -> list[DossierField]:
    return [f for f in service.fields if not draft.values.get(f.key)]


def set_value(
    service: Service, draft: DossierDraft, key: str, raw: str, today: dt.date | None = None
) -> str:
    """Validate and store what the citizen typed for one field; FieldError if unacceptable."""
    field = next(f for f in service.fields if f.key == key)
    value = clean_value(field, raw, today)
    # JSON columns change only on reassignment.
    draft.values = {**draft.values, key: value}
    draft.typed = sorted(set(draft.typed) | {key})
    return value


@dataclass(frozen=True)
class CorrectionTarget:
    field: DossierField | None
    locked: bool = False


def find_field_to_correct(service: Service, text: str) -> CorrectionTarget:
    """'sửa địa chỉ' → the field whose label best matches the words after the verb."""
    words = [w for w in fold(text).replace(",", " ").split() if w not in _CORRECTION_VERBS]
    best, best_score = None, 0
    for field in service.fields:
        label_words = set(fold(field.label).replace(",", " ").split())
        score = sum(1 for w in words if w in label_words)
        if score > best_score:
            best, best_score = field, score
    if best is None:
        return CorrectionTarget(None)
    return CorrectionTarget(best, locked=best.source in LOCKED_SOURCES)


_CORRECTION_VERBS = {
    "sua",
    "lai",
    "doi",
    "thay",
    "chinh",
    "cap",
    "nhat",
    "toi",
    "muon",
    "cho",
    "can",
}


def _masked(field: DossierField, value: str | None) -> str:
    shown = display_value(field, value)
    if value and field.source.endswith(".cccd"):
        return mask_cccd(value)
    if value and field.source.endswith(".phone"):
        return mask_phone(value)
    return shown


def summary(service: Service, draft: DossierDraft, mask: bool = True) -> str:
    """Short phone-screen summary; ID and phone numbers masked (they came from the registry)."""
    lines = [f"Hồ sơ {service.name}:"]
    for field in service.fields:
        value = draft.values.get(field.key)
        shown = _masked(field, value) if mask else display_value(field, value)
        lines.append(f"• {field.label}: {shown}")
    return "\n".join(lines)


def abandon(draft: DossierDraft) -> None:
    """The citizen declined or replaced this draft: it stays for the record, closed."""
    DRAFT.move(draft, DraftState.ABANDONED)
