"""The reminders `bot.reminders.rules` says are due, for the whole database: the scan's test oracle.

Only the rules are applied; preferences and open dossiers (the scan's filters on creating
reminders, not due rules) are left out, so callers use populations without them.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from bot.catalogue.model import Catalogue
from bot.core.models import Citizen, Record
from bot.reminders.rules import dues_for_subject, record_rule, reminder_dates

Key = tuple[str, int, str, str, int, Any]  # subject type and id, service, event key, stage, record


def expected_by_day(
    engine: Engine, catalogue: Catalogue, days: Iterable[dt.date]
) -> dict[dt.date, set[Key]]:
    """(subject_type, subject_id, service_code, event_key, stage, record_id) per send day."""
    wanted: dict[dt.date, set[Key]] = {day: set() for day in days}
    with engine.connect() as conn:
        birth = dict(conn.execute(select(Citizen.id, Citizen.date_of_birth)).all())
        records = conn.execute(
            select(
                Record.id,
                Record.kind,
                Record.citizen_id,
                Record.business_id,
                Record.issued_on,
                Record.valid_until,
                Record.event_date,
            )
        ).all()
    for service in catalogue.services:
        rule = record_rule(service)
        if rule is None:
            continue
        by_subject: dict[int, list[Any]] = defaultdict(list)
        for record in records:
            subject = rule.subject_id(record)
            if subject is not None:
                by_subject[subject].append(record)
        for subject, own in by_subject.items():
            dob = birth.get(subject) if rule.subject == "citizen" else None
            for due in dues_for_subject(service, own, dob):
                for stage, when in reminder_dates(service, due):
                    if when in wanted:
                        key = (rule.subject, subject, service.code, due.event_key, stage)
                        wanted[when].add((*key, due.record_id))
    return wanted


def expected_reminders(engine: Engine, catalogue: Catalogue, day: dt.date) -> set[Key]:
    """The reminders the rules send on `day`."""
    return expected_by_day(engine, catalogue, [day])[day]
