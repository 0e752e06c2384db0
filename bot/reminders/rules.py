"""When a service becomes due: the catalogue's trigger rules, stated once.

`record_rule` turns a service's trigger into a `RecordRule`: which of a subject's records count
(kind, newest only, not fulfilled by a later record) and which date column sets the deadline.
The Python functions below apply it per subject (list_due, reminder texts); the scheduler's
set-based scan (`scheduler.scan`) compiles the same `RecordRule` into SQL. The property test
(tests/test_due_property.py) checks both give the same reminders day by day.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

from bot.catalogue.model import (
    AgeMilestoneTrigger,
    EventDeadlineTrigger,
    ExpiryTrigger,
    JoinedTrigger,
    Service,
)
from bot.vietnamese.vn import add_years

DateColumn = Literal["issued_on", "valid_until", "event_date"]


class RecordLike(Protocol):
    """What the rules read from a record (a `bot.core.models.Record` or a plain test object)."""

    @property
    def id(self) -> int | None: ...
    @property
    def kind(self) -> str: ...
    @property
    def citizen_id(self) -> int | None: ...
    @property
    def business_id(self) -> int | None: ...
    @property
    def issued_on(self) -> dt.date | None: ...
    @property
    def valid_until(self) -> dt.date | None: ...
    @property
    def event_date(self) -> dt.date | None: ...


R = TypeVar("R", bound=RecordLike)


@dataclass(frozen=True)
class RecordRule:
    """Which records of one subject count for a service, and the column its deadline comes from.

    - `record_kind`: only records of this kind, owned by the service's `subject`;
    - `latest_only`: only the subject's newest record of the kind counts (largest `issued_on`,
      then largest id; records without `issued_on` never count) — a renewed ID card replaces
      the old one;
    - `fulfilled_by`: a record of this kind of the same subject with `event_date` on or after the
      record's `event_date` means the event was handled (a birth registered after the notice);
    - the deadline is `date_column + offset_days` (age milestones: see `id_card_expiry`);
    - `key_with_deadline`: the reminder key names the deadline too (a renewed expiry date on
      the same record is a new event).
    """

    service_code: str
    subject: Literal["citizen", "business"]
    record_kind: str
    date_column: DateColumn
    offset_days: int = 0
    fulfilled_by: str | None = None
    latest_only: bool = False
    key_with_deadline: bool = False
    age_milestones: AgeMilestoneTrigger | None = None

    def subject_id(self, record: RecordLike) -> int | None:
        return record.citizen_id if self.subject == "citizen" else record.business_id


def record_rule(service: Service) -> RecordRule | None:
    """The rule of a triggered service; None for services only started on request."""
    trigger = service.trigger
    code, subject = service.code, service.subject
    if isinstance(trigger, ExpiryTrigger):
        return RecordRule(code, subject, trigger.record_kind, "valid_until", key_with_deadline=True)
    if isinstance(trigger, AgeMilestoneTrigger):
        return RecordRule(
            code,
            subject,
            trigger.record_kind,
            "issued_on",
            latest_only=True,
            age_milestones=trigger,
        )
    if isinstance(trigger, EventDeadlineTrigger):
        return RecordRule(
            code,
            subject,
            trigger.record_kind,
            "event_date",
            offset_days=trigger.within_days,
            fulfilled_by=trigger.fulfilled_by,
        )
    if isinstance(trigger, JoinedTrigger):
        return RecordRule(
            code, subject, trigger.record_kind, "event_date", offset_days=trigger.within_days
        )
    return None


@dataclass(frozen=True)
class Due:
    """A service due for one subject: `deadline` anchors the catalogue's reminder offsets."""

    service_code: str
    event_key: str
    deadline: dt.date
    filing_deadline: dt.date
    record_id: int | None

    def window_start(self, service: Service) -> dt.date:
        return self.deadline - dt.timedelta(days=max(service.remind_days_before, default=0))

    def overlaps(self, service: Service, start: dt.date, end: dt.date) -> bool:
        """True when the reminder window [first reminder, deadline] meets [start, end]."""
        return self.window_start(service) <= end and self.deadline >= start


def id_card_expiry(
    date_of_birth: dt.date, issued_on: dt.date, trigger: AgeMilestoneTrigger
) -> tuple[dt.date, int] | None:
    """Expiry date and milestone age of an identity card, or None for a lifetime card.

    Luật Căn cước 2023, art. 21: cards are renewed at the milestone ages; a card issued or
    renewed within `grace_years` before a milestone stays valid until the next milestone; a card
    issued at `no_expiry_from_age` or older never expires.
    """
    if issued_on >= add_years(date_of_birth, trigger.no_expiry_from_age):
        return None
    for age in trigger.milestones:
        birthday = add_years(date_of_birth, age)
        if issued_on < add_years(birthday, -trigger.grace_years):
            return birthday, age
    return None


def due_for_record(
    service: Service,
    *,
    record_id: int | None,
    issued_on: dt.date | None,
    valid_until: dt.date | None,
    event_date: dt.date | None,
    date_of_birth: dt.date | None = None,
) -> Due | None:
    """The deadline one record creates for `service`, or None when it creates none.

    Looks at this record only: whether the record counts at all (newest card, birth not yet
    registered) depends on the subject's other records, see `counting_records`/`dues_for_subject`.
    """
    rule = record_rule(service)
    if rule is None:
        return None
    if rule.age_milestones is not None:
        if issued_on is None or date_of_birth is None:
            return None
        expiry = id_card_expiry(date_of_birth, issued_on, rule.age_milestones)
        if expiry is None:
            return None
        deadline, age = expiry
        return Due(service.code, f"age:{age}", deadline, deadline, record_id)
    date = {"issued_on": issued_on, "valid_until": valid_until, "event_date": event_date}[
        rule.date_column
    ]
    if date is None:
        return None
    deadline = date + dt.timedelta(days=rule.offset_days)
    key = f"record:{record_id}" + (f":{deadline.isoformat()}" if rule.key_with_deadline else "")
    file_before = getattr(service.trigger, "file_before_days", 0)
    return Due(service.code, key, deadline, deadline - dt.timedelta(days=file_before), record_id)


def counting_records(rule: RecordRule, records: Iterable[R]) -> list[R]:
    """The records that count for `rule`: the right kind and subject, the newest one only
    (`latest_only`), no later fulfilling record (`fulfilled_by`). Records of several subjects
    may be mixed; each subject is judged on its own records."""
    by_subject: dict[int, list[R]] = defaultdict(list)
    for record in records:
        subject = rule.subject_id(record)
        if subject is not None:
            by_subject[subject].append(record)
    counted = []
    for subject_records in by_subject.values():
        own = [r for r in subject_records if r.kind == rule.record_kind]
        if rule.latest_only:
            dated = [r for r in own if r.issued_on is not None]
            own = [max(dated, key=lambda r: (r.issued_on, r.id or 0))] if dated else []
        if rule.fulfilled_by:
            done = [
                r.event_date
                for r in subject_records
                if r.kind == rule.fulfilled_by and r.event_date is not None
            ]
            own = [r for r in own if not (r.event_date and any(d >= r.event_date for d in done))]
        counted += own
    return counted


def dues_for_subject(
    service: Service, records: Sequence[RecordLike], date_of_birth: dt.date | None = None
) -> list[Due]:
    """Everything `service` makes due for one subject, given all that subject's records
    (`date_of_birth` is the citizen's, for age milestones)."""
    rule = record_rule(service)
    if rule is None:
        return []
    dues = (due_of(service, record, date_of_birth) for record in counting_records(rule, records))
    return [due for due in dues if due is not None]


def due_of(service: Service, record: RecordLike, date_of_birth: dt.date | None) -> Due | None:
    """`due_for_record` for a stored record (or anything shaped like one)."""
    return due_for_record(
        service,
        record_id=record.id,
        issued_on=record.issued_on,
        valid_until=record.valid_until,
        event_date=record.event_date,
        date_of_birth=date_of_birth,
    )


def reminder_dates(service: Service, due: Due) -> list[tuple[int, dt.date]]:
    """(stage, send date) pairs: stage is the offset in days before the deadline."""
    return [(d, due.deadline - dt.timedelta(days=d)) for d in service.remind_days_before]
