"""Reminder messages rendered from the catalogue's texts with the subject's data."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from bot.catalogue.model import Catalogue, Service
from bot.core.models import Business, Citizen, Record, Reminder
from bot.reminders.rules import due_of
from bot.vietnamese.vn import format_date


def owns_reminder(session: Session, citizen: Citizen, reminder: Reminder) -> bool:
    """A reminder is the citizen's own, or about a business they legally represent."""
    if reminder.subject_type == "citizen":
        own: bool = reminder.subject_id == citizen.id
        return own
    business: Business | None = session.get(Business, reminder.subject_id)
    return business is not None and business.representative_id == citizen.id


def render(
    service: Service,
    name: str,
    due_date: dt.date,
    today: dt.date,
    sms: bool = False,
) -> str:
    deadline = due_date - dt.timedelta(days=getattr(service.trigger, "file_before_days", 0))
    template = (service.texts.reminder_sms if sms else None) or service.texts.reminder
    return template.format(
        name=name,
        service=service.name,
        document=service.short_name,
        due_date=format_date(due_date),
        deadline=format_date(deadline),
        days_left=max((due_date - today).days, 0),
        fee=service.fee.text,
    )


def render_reminder(
    session: Session, catalogue: Catalogue, reminder: Reminder, today: dt.date, sms: bool = False
) -> str:
    service = catalogue.service(reminder.service_code)
    if reminder.subject_type == "citizen":
        subject = session.get(Citizen, reminder.subject_id)
        name = subject.full_name if subject else ""
        date_of_birth = subject.date_of_birth if subject else None
    else:
        business = session.get(Business, reminder.subject_id)
        name, date_of_birth = (business.name if business else ""), None
    record = session.get(Record, reminder.record_id) if reminder.record_id else None
    due_date = reminder.due_on
    if record is not None:
        due = due_of(service, record, date_of_birth)
        due_date = due.deadline if due else due_date
    return render(service, name, due_date, today, sms)
