"""Daily due-event scan: set-based INSERT … SELECT of reminder rows, idempotent by unique key.

For a scan day D and a reminder stage s (days before the deadline), the deadline is D + s, so
every rule reduces to comparing a date column with literal dates: the database does the work
over the whole population, nothing is loaded into Python. What the rules are (record kind,
date column, newest-only, fulfilled-by) comes from `bot.reminders.rules.record_rule`, whose Python
functions are the reference; tests/test_due_property.py checks the two agree day by day.
Preferences (stop, postpone) and open dossiers are not due rules but filters on creating
reminders, so they live here only.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, and_, cast, exists, func, literal, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.orm import aliased
from sqlalchemy.sql import Insert, Select

from bot.catalogue.model import Catalogue, Service
from bot.core.clock import utcnow
from bot.core.lifecycles import DOSSIER_IN_PROGRESS, ReminderState
from bot.core.models import Business, Citizen, Dossier, Record, Reminder, ReminderPreference
from bot.reminders.preferences import ALL_SERVICES
from bot.reminders.rules import RecordRule, record_rule
from bot.vietnamese.vn import add_years

log = logging.getLogger(__name__)

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


def _subject_filters(service: Service, subject_id: Any, day: dt.date, business: bool) -> list[Any]:
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
            Dossier.status.in_(DOSSIER_IN_PROGRESS),
        ),
    ]


def _subject(rule: RecordRule, record: Any) -> Any:
    """The column holding the subject id, on the records table or one of its aliases."""
    return record.citizen_id if rule.subject == "citizen" else record.business_id


def _counts(rule: RecordRule, record: Any) -> list[Any]:
    """SQL for `bot.reminders.rules.counting_records`: which rows of `record` (an alias of records)
    count for the rule; correlated NOT EXISTS keep it one set-based statement."""
    filters = [record.kind == rule.record_kind, _subject(rule, record).is_not(None)]
    if rule.latest_only:
        newer = aliased(Record)
        filters += [
            record.issued_on.is_not(None),
            ~exists().where(
                _subject(rule, newer) == _subject(rule, record),
                newer.kind == rule.record_kind,
                or_(
                    newer.issued_on > record.issued_on,
                    and_(newer.issued_on == record.issued_on, newer.id > record.id),
                ),
            ),
        ]
    if rule.fulfilled_by:
        later = aliased(Record)
        filters.append(
            ~exists().where(
                _subject(rule, later) == _subject(rule, record),
                later.kind == rule.fulfilled_by,
                later.event_date >= record.event_date,
            )
        )
    return filters


def _pending_rows(
    kind: str,
    subject: Any,
    service: Service,
    event_key: Any,
    stage: int,
    record_id: Any,
    day: dt.date,
    now: dt.datetime,
) -> Select:
    """The columns of would-be reminder rows, pending and never tried; `subject`, `event_key`
    and `record_id` are SQL expressions."""
    return select(
        literal(kind),
        subject,
        literal(service.code),
        event_key,
        literal(stage),
        record_id,
        literal(day),
        literal(ReminderState.PENDING.value),
        literal(0),
        literal(now),
        literal(now),
    )


def _record_stage(
    service: Service, rule: RecordRule, stage: int, day: dt.date, now: dt.datetime
) -> Select:
    """Date-column rules (expiry, event deadline): one literal date per stage, since the
    deadline is `date_column + offset_days` and must equal day + stage."""
    deadline = day + dt.timedelta(days=stage)
    business = rule.subject == "business"
    subject = _subject(rule, Record)
    date_match = getattr(Record, rule.date_column) == deadline - dt.timedelta(days=rule.offset_days)
    event_key = literal("record:") + cast(Record.id, String)
    if rule.key_with_deadline:
        event_key = event_key + literal(f":{deadline.isoformat()}")
    kind = "business" if business else "citizen"
    return _pending_rows(kind, subject, service, event_key, stage, Record.id, day, now).where(
        date_match,
        *_counts(rule, Record),
        *_subject_filters(service, subject, day, business),
    )


def _age_stage(
    service: Service, rule: RecordRule, stage: int, day: dt.date, now: dt.datetime
) -> Iterator[Select]:
    """Identity cards (`bot.reminders.rules.id_card_expiry` turned around): citizens whose milestone
    birthday is D + stage and whose counting card must be renewed at that milestone (issued
    before the grace window, after the previous one, under the lifetime age)."""
    trigger = rule.age_milestones
    assert trigger is not None
    birthday = day + dt.timedelta(days=stage)
    for index, age in enumerate(trigger.milestones):
        for dob in _birthdays_to_dobs(birthday, age):
            card = aliased(Record)
            issued_bounds = [
                card.issued_on < add_years(birthday, -trigger.grace_years),
                card.issued_on < add_years(dob, trigger.no_expiry_from_age),
            ]
            if index > 0:
                previous = add_years(dob, trigger.milestones[index - 1])
                issued_bounds.append(card.issued_on >= add_years(previous, -trigger.grace_years))
            event_key = literal(f"age:{age}")
            rows = _pending_rows(
                "citizen", Citizen.id, service, event_key, stage, card.id, day, now
            )
            yield rows.where(
                Citizen.date_of_birth == dob,
                card.citizen_id == Citizen.id,
                *issued_bounds,
                *_counts(rule, card),
                *_subject_filters(service, Citizen.id, day, business=False),
            )


def stage_queries(catalogue: Catalogue, day: dt.date, now: dt.datetime) -> Iterator[StageQuery]:
    """One SELECT of would-be reminder rows per service, stage (and ID-card milestone)."""
    for service in catalogue.services:
        rule = record_rule(service)
        if rule is None:
            continue
        for stage in service.remind_days_before:
            if rule.age_milestones is not None:
                for query in _age_stage(service, rule, stage, day, now):
                    yield StageQuery(service, stage, query)
            else:
                yield StageQuery(service, stage, _record_stage(service, rule, stage, day, now))


def candidates(engine: Engine, queries: Iterable[StageQuery]) -> list[tuple[Any, ...]]:
    """Every reminder row `queries` (a day's `stage_queries`) select, without writing:
    (subject_type, subject_id, service_code, event_key, stage, record_id). Existing reminders
    are not subtracted. For tests and checks; queries may be built once and run many times."""
    with engine.connect() as conn:
        return [tuple(row[:6]) for item in queries for row in conn.execute(item.select)]


def _insert(engine: Engine, query: Select) -> Insert:
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
