"""Daily due-event scan: set-based INSERT … SELECT of reminder rows, idempotent by unique key.

For a scan day D and a reminder stage s (days before the deadline), the deadline is D + s, so
every rule reduces to comparing a date column with literal dates: the database does the work
over the whole population, nothing is loaded into Python. The same rules are the reference
functions in `bot.rules` (tested against this scan).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sqlalchemy import String, cast, exists, func, literal, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.orm import aliased
from sqlalchemy.sql import Select

from bot.catalogue import (
    AgeMilestoneTrigger,
    Catalogue,
    EventDeadlineTrigger,
    ExpiryTrigger,
    Service,
)
from bot.models import Business, Citizen, Dossier, Record, Reminder, ReminderPreference, utcnow
from bot.preferences import ALL_SERVICES
from bot.vn import add_years

log = logging.getLogger(__name__)

OPEN_DOSSIER_STATUSES = ("prepared", "received", "processing", "needs_info")
REMINDER_COLUMNS = (
    "subject_type",
    "subject_id",
    "service_code",
    "event_key",
    "stage",
    "record_id",
    "due_on",
    "state",
    "attempts",
    "created_at",
    "updated_at",
)


@dataclass(frozen=True)
class StageQuery:
    service: Service
    stage: int
    select: Select


def _birthdays_to_dobs(birthday: dt.date, age: int) -> list[dt.date]:
    """Dates of birth whose `age`-th birthday falls on `birthday` (29 Feb → 28 Feb included)."""
    dobs = {add_years(birthday, -age)}
    if birthday.month == 2 and birthday.day == 28:
        with contextlib.suppress(ValueError):  # not a leap year
            dobs.add(dt.date(birthday.year - age, 2, 29))
    return sorted(d for d in dobs if add_years(d, age) == birthday)


def _subject_filters(service: Service, subject_id, day: dt.date, business: bool):  # type: ignore[no-untyped-def]
    """Not stopped, not postponed past `day`, no open dossier for this service. A business's
    preferences are its legal representative's."""
    if business:
        preference_owner = [
            Business.id == subject_id,
            ReminderPreference.citizen_id == Business.representative_id,
        ]
        dossier_owner = Dossier.business_id == subject_id
    else:
        preference_owner = [ReminderPreference.citizen_id == subject_id]
        dossier_owner = Dossier.citizen_id == subject_id
    return [
        ~exists().where(
            *preference_owner,
            ReminderPreference.service_code.in_([service.code, ALL_SERVICES]),
            or_(ReminderPreference.stopped, ReminderPreference.postponed_until > day),
        ),
        ~exists().where(
            dossier_owner,
            Dossier.service_code == service.code,
            Dossier.status.in_(OPEN_DOSSIER_STATUSES),
        ),
    ]


def _record_stage(service: Service, stage: int, day: dt.date, now: dt.datetime) -> Select:
    """Expiry and event-deadline triggers: one record kind, one literal date per stage."""
    trigger = service.trigger
    deadline = day + dt.timedelta(days=stage)
    business = service.subject == "business"
    subject = Record.business_id if business else Record.citizen_id
    if isinstance(trigger, ExpiryTrigger):
        date_match = Record.valid_until == deadline
        event_key = (
            literal("record:") + cast(Record.id, String) + literal(f":{deadline.isoformat()}")
        )
    else:
        date_match = Record.event_date == deadline - dt.timedelta(days=trigger.within_days)
        event_key = literal("record:") + cast(Record.id, String)
    filters = [Record.kind == trigger.record_kind, date_match, subject.is_not(None)]
    filters += _subject_filters(service, subject, day, business)
    if isinstance(trigger, EventDeadlineTrigger) and trigger.fulfilled_by:
        later = aliased(Record)
        filters.append(
            ~exists().where(
                later.kind == trigger.fulfilled_by,
                later.citizen_id == Record.citizen_id,
                later.event_date >= Record.event_date,
            )
        )
    return select(
        literal("business" if business else "citizen"),
        subject,
        literal(service.code),
        event_key,
        literal(stage),
        Record.id,
        literal(day),
        literal("pending"),
        literal(0),
        literal(now),
        literal(now),
    ).where(*filters)


def _age_stage(
    service: Service, trigger: AgeMilestoneTrigger, stage: int, day: dt.date, now: dt.datetime
) -> Iterator[Select]:
    """Identity cards: citizens whose milestone birthday is D + stage and whose latest card
    must be renewed at that milestone (issued before the 2-year window, under the lifetime age)."""
    birthday = day + dt.timedelta(days=stage)
    for index, age in enumerate(trigger.milestones):
        for dob in _birthdays_to_dobs(birthday, age):
            card, newer = aliased(Record), aliased(Record)
            issued_bounds = [
                card.issued_on < add_years(birthday, -trigger.grace_years),
                card.issued_on < add_years(dob, trigger.no_expiry_from_age),
            ]
            if index > 0:
                previous = add_years(dob, trigger.milestones[index - 1])
                issued_bounds.append(card.issued_on >= add_years(previous, -trigger.grace_years))
            yield select(
                literal("citizen"),
                Citizen.id,
                literal(service.code),
                literal(f"age:{age}"),
                literal(stage),
                card.id,
                literal(day),
                literal("pending"),
                literal(0),
                literal(now),
                literal(now),
            ).where(
                Citizen.date_of_birth == dob,
                card.citizen_id == Citizen.id,
                card.kind == trigger.record_kind,
                *issued_bounds,
                ~exists().where(
                    newer.citizen_id == Citizen.id,
                    newer.kind == trigger.record_kind,
                    newer.issued_on > card.issued_on,
                ),
                *_subject_filters(service, Citizen.id, day, business=False),
            )


def stage_queries(catalogue: Catalogue, day: dt.date, now: dt.datetime) -> Iterator[StageQuery]:
    for service in catalogue.services:
        trigger = service.trigger
        for stage in service.remind_days_before:
            if isinstance(trigger, AgeMilestoneTrigger):
                for query in _age_stage(service, trigger, stage, day, now):
                    yield StageQuery(service, stage, query)
            elif isinstance(trigger, (ExpiryTrigger, EventDeadlineTrigger)):
                yield StageQuery(service, stage, _record_stage(service, stage, day, now))


def _insert(engine: Engine, query: Select):  # type: ignore[no-untyped-def]
    factory = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    columns = [getattr(Reminder.__table__.c, name) for name in REMINDER_COLUMNS]
    return factory(Reminder.__table__).from_select(columns, query).on_conflict_do_nothing()


def _new_only(query: Select) -> Select:
    """For a dry run: rows the insert would create (no reminder with the same key yet)."""
    rows = query.subquery()
    cols = list(rows.c)
    return (
        select(func.count())
        .where(
            ~exists().where(
                Reminder.subject_type == cols[0],
                Reminder.subject_id == cols[1],
                Reminder.service_code == cols[2],
                Reminder.event_key == cols[3],
                Reminder.stage == cols[4],
            )
        )
        .select_from(rows)
    )


def scan(
    engine: Engine,
    catalogue: Catalogue,
    day: dt.date,
    *,
    dry_run: bool = False,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Create the reminder rows due on `day`; returns {service code: rows created (or would be)}."""
    now = utcnow()
    counts = {s.code: 0 for s in catalogue.services if s.remind_days_before}
    for item in stage_queries(catalogue, day, now):
        with engine.begin() as conn:
            if dry_run:
                created = conn.execute(_new_only(item.select)).scalar_one()
            else:
                created = max(conn.execute(_insert(engine, item.select)).rowcount, 0)
        counts[item.service.code] += created
        if progress:
            progress(item.service.code, created)
    log.info(
        "scan of %s: %d reminders %s", day, sum(counts.values()), "found" if dry_run else "created"
    )
    return counts
