"""What is coming due for a citizen (their own records and the businesses they represent) and
for their minor children (`bot.identity.family`)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bot.catalogue.model import Catalogue, Service
from bot.core.models import Business, Citizen, Record, Reminder
from bot.identity.family import children_of, parent_sees
from bot.reminders.rules import Due, due_of, dues_for_subject
from bot.vietnamese.vn import format_date


@dataclass(frozen=True)
class DueItem:
    service: Service
    due: Due


def dues_of_citizen(
    session: Session,
    catalogue: Catalogue,
    citizen: Citizen,
    today: dt.date,
    horizon_days: int = 365,
) -> list[DueItem]:
    """What is coming due for the citizen and the businesses they represent."""
    business_ids = list(
        session.scalars(select(Business.id).where(Business.representative_id == citizen.id))
    )
    records = list(
        session.scalars(
            select(Record).where(
                or_(Record.citizen_id == citizen.id, Record.business_id.in_(business_ids))
            )
        )
    )
    return dues_for_records(catalogue, citizen, records, today, horizon_days)


def dues_for_records(
    catalogue: Catalogue, citizen: Citizen, records: list[Record], today: dt.date, horizon_days: int
) -> list[DueItem]:
    """Services whose reminder window meets [today, today + horizon], soonest deadline first.

    `records` are the citizen's own and those of the businesses they represent; the rules in
    `bot.reminders.rules` decide which count (newest ID card only, births not yet registered),
    as the scan does. Stop/postpone preferences are deliberately not applied: they silence
    reminders, and the citizen may still ask what is due.
    """
    end = today + dt.timedelta(days=horizon_days)
    own = [r for r in records if r.citizen_id == citizen.id]
    items = []
    for service in catalogue.services:
        subject_records = records if service.subject == "business" else own
        for due in dues_for_subject(service, subject_records, citizen.date_of_birth):
            if due.overlaps(service, today, end):
                items.append(DueItem(service, due))
    return sorted(items, key=lambda item: item.due.deadline)


# How long after a deadline a named document still counts as "the one to renew".
RECENTLY_EXPIRED_DAYS = 365


def service_due(
    session: Session, catalogue: Catalogue, citizen: Citizen, service_code: str, today: dt.date
) -> DueItem | None:
    """The next (or recently missed) deadline of one service for the citizen, however far
    ahead: the answer to "when does my passport expire?" and the first line of a request
    for a document the citizen holds."""
    earliest = today - dt.timedelta(days=RECENTLY_EXPIRED_DAYS)
    items = [
        item
        for item in dues_of_citizen(session, catalogue, citizen, earliest, horizon_days=36500)
        if item.service.code == service_code and item.due.deadline >= earliest
    ]
    upcoming = [i for i in items if i.due.deadline >= today]
    if upcoming:
        return upcoming[0]
    return items[-1] if items else None


def due_sentence(item: DueItem, today: dt.date, whose: str = "Ông/Bà") -> str:
    """One line a citizen understands: the deadline, how far off, and when to file by;
    `whose` names the holder when a parent asks for a child ("con Nguyễn Văn Bé")."""
    due, name = item.due, item.service.short_name
    prefix = f"Theo dữ liệu hiện có, hạn {name} của {whose}"
    if due.deadline < today:
        return f"{prefix} đã qua từ ngày {format_date(due.deadline)}."
    days = (due.deadline - today).days
    line = f"{prefix} là ngày {format_date(due.deadline)} (còn {days} ngày)"
    if due.filing_deadline < due.deadline:
        line += f"; Ông/Bà nên nộp hồ sơ trước ngày {format_date(due.filing_deadline)}"
    return line + "."


@dataclass(frozen=True)
class ChildDues:
    """A minor child of the asking parent and what is coming due for the child."""

    child: Citizen
    items: list[DueItem]


def dues_of_family(
    session: Session, catalogue: Catalogue, parent: Citizen, today: dt.date, horizon_days: int = 365
) -> list[ChildDues]:
    """What is coming due for the minors the data names as the parent's children (eldest
    first, children with nothing due left out): `dues_of_citizen` of each child, limited to
    the services a parent sees for a child (catalogue `parent_may`)."""
    family = []
    for child in children_of(session, parent, today):
        items = [
            item
            for item in dues_of_citizen(session, catalogue, child, today, horizon_days)
            if parent_sees(item.service)
        ]
        if items:
            family.append(ChildDues(child, items))
    return family


NOTHING_DUE = "Trong 12 tháng tới Ông/Bà không có giấy tờ nào đến hạn cần làm thủ tục."


def due_line(item: DueItem) -> str:
    """One item of the list: service name and deadline, and the filing date when earlier."""
    due = item.due
    line = f"• {item.service.name}: hạn {format_date(due.deadline)}"
    if due.filing_deadline != due.deadline:
        line += f", nộp trước {format_date(due.filing_deadline)}"
    return line


def child_label(child: Citizen) -> str:
    return f"Con {child.full_name} (sinh {child.date_of_birth.year})"


def family_due_text(own: list[DueItem], family: list[ChildDues]) -> str:
    """The answer to "what is due for me": the citizen's own items, then each child's."""
    if own:
        parts = ["Các việc sắp đến hạn của Ông/Bà:", *(due_line(i) for i in own)]
    else:
        parts = [NOTHING_DUE]
    for entry in family:
        parts += [f"{child_label(entry.child)}:", *(due_line(i) for i in entry.items)]
    return "\n".join(parts)


def child_reminder_text(
    session: Session,
    catalogue: Catalogue,
    reminder: Reminder,
    parent: Citizen,
    child: Citizen,
    today: dt.date,
) -> str:
    """A minor's reminder as told to the parent: whose document, its deadline, what to say."""
    service = catalogue.service(reminder.service_code)
    record = session.get(Record, reminder.record_id) if reminder.record_id else None
    due = due_of(service, record, child.date_of_birth) if record is not None else None
    deadline = due.deadline if due is not None else reminder.due_on
    days = max((deadline - today).days, 0)
    return (
        f"Kính gửi Ông/Bà {parent.full_name}: hạn {service.short_name} cho con "
        f"{child.full_name} (sinh {child.date_of_birth.year}) là ngày {format_date(deadline)} "
        f"(còn {days} ngày). Ông/Bà nhắn “giấy tờ sắp hết hạn” để xem và để hệ thống chuẩn "
        "bị sẵn hồ sơ cho con."
    )


def citizens_with_dues(
    session: Session,
    catalogue: Catalogue,
    today: dt.date,
    horizon_days: int = 60,
    service_code: str | None = None,
    chunk: int = 500,
) -> Iterator[tuple[Citizen, list[DueItem]]]:
    """Walk citizens in id order, yielding those with something due (for demos and support)."""
    last_id = 0
    while True:
        citizens = list(
            session.scalars(
                select(Citizen).where(Citizen.id > last_id).order_by(Citizen.id).limit(chunk)
            )
        )
        if not citizens:
            return
        last_id = citizens[-1].id
        ids = [c.id for c in citizens]
        business_owner = dict(
            session.execute(
                select(Business.id, Business.representative_id).where(
                    Business.representative_id.in_(ids)
                )
            ).all()
        )
        by_citizen: dict[int, list[Record]] = defaultdict(list)
        records = session.scalars(
            select(Record).where(
                or_(Record.citizen_id.in_(ids), Record.business_id.in_(list(business_owner)))
            )
        )
        for record in records:
            owner = record.citizen_id or business_owner[record.business_id]
            by_citizen[owner].append(record)
        for citizen in citizens:
            items = dues_for_records(
                catalogue, citizen, by_citizen.get(citizen.id, []), today, horizon_days
            )
            if service_code:
                items = [i for i in items if i.service.code == service_code]
            if items:
                yield citizen, items
