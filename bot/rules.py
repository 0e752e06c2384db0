"""When a service becomes due for a record: the catalogue's trigger rules as pure functions.

The scheduler's set-based scan implements the same rules in SQL; these functions are the
reference (tested on fixed dates) and serve per-citizen questions such as "what is due for me".
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from bot.catalogue import (
    AgeMilestoneTrigger,
    EventDeadlineTrigger,
    ExpiryTrigger,
    JoinedTrigger,
    Service,
)
from bot.vn import add_years


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
    """The deadline a record creates for `service`, or None when it creates none."""
    trigger = service.trigger
    if isinstance(trigger, ExpiryTrigger):
        if valid_until is None:
            return None
        return Due(
            service.code,
            f"record:{record_id}:{valid_until.isoformat()}",
            valid_until,
            valid_until - dt.timedelta(days=trigger.file_before_days),
            record_id,
        )
    if isinstance(trigger, AgeMilestoneTrigger):
        if issued_on is None or date_of_birth is None:
            return None
        expiry = id_card_expiry(date_of_birth, issued_on, trigger)
        if expiry is None:
            return None
        deadline, age = expiry
        return Due(service.code, f"age:{age}", deadline, deadline, record_id)
    if isinstance(trigger, (EventDeadlineTrigger, JoinedTrigger)):
        if event_date is None:
            return None
        deadline = event_date + dt.timedelta(days=trigger.within_days)
        return Due(service.code, f"record:{record_id}", deadline, deadline, record_id)
    return None


def reminder_dates(service: Service, due: Due) -> list[tuple[int, dt.date]]:
    """(stage, send date) pairs: stage is the offset in days before the deadline."""
    return [(d, due.deadline - dt.timedelta(days=d)) for d in service.remind_days_before]
