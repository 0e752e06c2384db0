"""What is coming due for a citizen (their own records and the businesses they represent)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bot.catalogue.model import Catalogue, Service
from bot.core.models import Business, Citizen, Record
from bot.reminders.rules import Due, dues_for_subject


@dataclass(frozen=True)
class DueItem:
    service: Service
    due: Due


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
