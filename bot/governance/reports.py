"""The plan's indicators for a period, overall and per service (the officer console's dashboard).

Definitions (seeds 000, 003, 004):
- satisfaction rate: share of 1–5 ratings that are 4 or 5 (target ≥ 95 %);
- reminders sent: reminders of the period no longer pending; delivered: their delivery row
  (`deliveries.idempotency_key = "reminder:<id>"`) was sent, or the reminder's state says so;
  turned into a dossier: the same person filed the same service within 90 days after it;
- median time from a reminder to the dossier it led to, and from the citizen's first message of
  the conversation session in which they submitted to the submission (target < 5 minutes);
- dossiers by status (submitted in the period); fallback rate: share of citizen messages the
  model could not classify (`nlu_fallback`), in conversations that started in the period;
- online payment rate: of the dossiers submitted in the period that owe a fee online (a
  payment request not void), the share paid online; per service, overall, and per level of
  the receiving authority against the plan's targets (province ≥ 50 %, commune ≥ 30 %; the
  district tier's 40 % ended with the two-tier local government of July 2025).
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import String, and_, cast, func, literal, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bot.core.lifecycles import DeliveryStatus, PaymentStatus, ReminderState
from bot.core.models import (
    ConversationSummary,
    ConversationTag,
    Delivery,
    Dossier,
    DossierDraft,
    Payment,
    Reminder,
    SatisfactionRating,
)
from bot.core.tracker_store import events, has_events_table

SATISFACTION_TARGET = 0.95
SUBMISSION_TARGET = dt.timedelta(minutes=5)
SESSION_GAP = dt.timedelta(minutes=60)  # Rasa's session_expiration_time in domain.yml
CONVERSION_WINDOW = dt.timedelta(days=90)
_R = ReminderState
SENT_STATES = (_R.SENT, _R.DELIVERED, _R.CONVERTED, _R.FAILED)
DELIVERED_STATES = (_R.DELIVERED, _R.CONVERTED)
OVERALL = ""
TIER = "tier:"  # report keys of the authority levels: "tier:province", "tier:commune"
PAYMENT_TARGETS = {"province": 0.50, "commune": 0.30}


@dataclass
class Indicators:
    ratings: int = 0
    satisfied: int = 0
    histogram: dict[int, int] = field(default_factory=lambda: dict.fromkeys(range(1, 6), 0))
    reminders_sent: int = 0
    reminders_delivered: int = 0
    reminders_converted: int = 0
    reminder_delays: list[float] = field(default_factory=list)
    submission_delays: list[float] = field(default_factory=list)
    dossiers: dict[str, int] = field(default_factory=dict)
    user_messages: int = 0
    fallbacks: int = 0
    fees_owed: int = 0
    fees_paid: int = 0

    @property
    def satisfaction_rate(self) -> float | None:
        return self.satisfied / self.ratings if self.ratings else None

    @property
    def online_payment_rate(self) -> float | None:
        return self.fees_paid / self.fees_owed if self.fees_owed else None

    @property
    def fallback_rate(self) -> float | None:
        return self.fallbacks / self.user_messages if self.user_messages else None

    @property
    def median_reminder_to_dossier(self) -> dt.timedelta | None:
        return _median(self.reminder_delays)

    @property
    def median_first_message_to_submission(self) -> dt.timedelta | None:
        return _median(self.submission_delays)

    @property
    def dossier_total(self) -> int:
        return sum(self.dossiers.values())


def _median(seconds: list[float]) -> dt.timedelta | None:
    return dt.timedelta(seconds=statistics.median(seconds)) if seconds else None


class Report(defaultdict[str, Indicators]):
    """service code (or OVERALL) → Indicators."""

    def __init__(self) -> None:
        super().__init__(Indicators)

    def both(self, service: str | None) -> list[Indicators]:
        return [self[OVERALL], self[service]] if service else [self[OVERALL]]


@dataclass(frozen=True)
class Dashboard:
    """A report as the dashboard lays it out: the whole province, each service, and each
    authority level beside its online-payment target."""

    overall: Indicators
    per_service: list[tuple[str, Indicators]]
    payment_tiers: list[tuple[str, Indicators, float]]

    @classmethod
    def of(cls, report: Report) -> Dashboard:
        services = sorted((k, v) for k, v in report.items() if k != OVERALL and TIER not in k)
        tiers = [(t, report[TIER + t], goal) for t, goal in PAYMENT_TARGETS.items()]
        return cls(report[OVERALL], services, tiers)


def _counted(
    session: Session, service: Any, value: Any, when: Any, start: dt.datetime, end: dt.datetime
) -> list[Any]:
    """(service, value, count) rows of the period [start, end)."""
    return list(
        session.execute(
            select(service, value, func.count())
            .where(when >= start, when < end)
            .group_by(service, value)
        ).all()
    )


def _ratings(session: Session, report: Report, start: dt.datetime, end: dt.datetime) -> None:
    rating = SatisfactionRating
    rows = _counted(session, rating.service_code, rating.rating, rating.created_at, start, end)
    for service, stars, count in rows:
        for ind in report.both(service):
            ind.ratings += count
            ind.satisfied += count if stars >= 4 else 0
            ind.histogram[stars] = ind.histogram.get(stars, 0) + count


def _dossiers(session: Session, report: Report, start: dt.datetime, end: dt.datetime) -> None:
    rows = _counted(session, Dossier.service_code, Dossier.status, Dossier.submitted_at, start, end)
    for service, status, count in rows:
        for ind in report.both(service):
            ind.dossiers[status] = ind.dossiers.get(status, 0) + count


def _payments(
    session: Session,
    report: Report,
    start: dt.datetime,
    end: dt.datetime,
    tiers: Mapping[str, str],
) -> None:
    rows = session.execute(
        select(Dossier.service_code, Payment.status, func.count())
        .join(Payment, Payment.dossier_id == Dossier.id)
        .where(
            Dossier.submitted_at >= start,
            Dossier.submitted_at < end,
            Payment.status != PaymentStatus.VOID,
        )
        .group_by(Dossier.service_code, Payment.status)
    ).all()
    for service, status, count in rows:
        tier = tiers.get(service)
        for ind in [*report.both(service), *([report[TIER + tier]] if tier else [])]:
            ind.fees_owed += count
            ind.fees_paid += count if status == PaymentStatus.PAID else 0


def _filings(
    session: Session, subjects: set[tuple[str, int]], since: dt.datetime
) -> dict[tuple[str, int, str], list[dt.datetime]]:
    """(subject type, subject id, service) → submission times since `since`, in few queries."""
    found: dict[tuple[str, int, str], list[dt.datetime]] = defaultdict(list)
    for kind, column in (("citizen", Dossier.citizen_id), ("business", Dossier.business_id)):
        ids = sorted(i for k, i in subjects if k == kind)
        for start in range(0, len(ids), 500):
            rows = session.execute(
                select(column, Dossier.service_code, Dossier.submitted_at).where(
                    column.in_(ids[start : start + 500]), Dossier.submitted_at >= since
                )
            )
            for subject_id, service, at in rows:
                found[(kind, subject_id, service)].append(at)
    return found


def _reminders(session: Session, report: Report, start: dt.datetime, end: dt.datetime) -> None:
    key = literal("reminder:", String) + cast(Reminder.id, String)
    rows = session.execute(
        select(Reminder, Delivery.status, func.coalesce(Delivery.sent_at, Reminder.updated_at))
        .outerjoin(
            Delivery,
            and_(Delivery.idempotency_key == key, Delivery.status == DeliveryStatus.SENT),
        )
        .where(
            Reminder.created_at >= start,
            Reminder.created_at < end,
            Reminder.state.in_(SENT_STATES),
        )
    ).all()
    filings = _filings(session, {(r.subject_type, r.subject_id) for r, _, _ in rows}, start)
    for reminder, delivery_status, at in rows:
        delivered = delivery_status == DeliveryStatus.SENT or reminder.state in DELIVERED_STATES
        times = filings.get((reminder.subject_type, reminder.subject_id, reminder.service_code))
        filed = min((t for t in times or [] if at <= t < at + CONVERSION_WINDOW), default=None)
        for ind in report.both(reminder.service_code):
            ind.reminders_sent += 1
            ind.reminders_delivered += delivered
            if filed is not None:
                ind.reminders_converted += 1
                ind.reminder_delays.append((filed - at).total_seconds())


def session_start(timestamps: Iterable[float], before: float) -> float | None:
    """The first message of the run of messages (no gap over SESSION_GAP) ending at `before`."""
    earlier = sorted((t for t in timestamps if t <= before), reverse=True)
    if not earlier:
        return None
    start = earlier[0]
    for stamp in earlier[1:]:
        if start - stamp > SESSION_GAP.total_seconds():
            break
        start = stamp
    return start


def _submission_times(
    session: Session, tracker: Engine | None, report: Report, start: dt.datetime, end: dt.datetime
) -> None:
    if tracker is None:
        return
    if not has_events_table(tracker):
        return
    dossiers = session.execute(
        select(Dossier.service_code, Dossier.submitted_at, DossierDraft.channel_user_id)
        .join(DossierDraft, DossierDraft.dossier_id == Dossier.id)
        .where(Dossier.submitted_at >= start, Dossier.submitted_at < end)
    ).all()
    senders = sorted({d.channel_user_id for d in dossiers})
    stamps: dict[str, list[float]] = defaultdict(list)
    with tracker.connect() as conn:
        for i in range(0, len(senders), 500):
            for sender, stamp in conn.execute(
                select(events.c.sender_id, events.c.timestamp).where(
                    events.c.sender_id.in_(senders[i : i + 500]), events.c.type_name == "user"
                )
            ):
                stamps[sender].append(stamp)
    for service, submitted, sender in dossiers:
        at = submitted.replace(tzinfo=dt.timezone.utc).timestamp()
        first = session_start(stamps.get(sender, []), at)
        if first is not None:
            for ind in report.both(service):
                ind.submission_delays.append(at - first)


def _fallbacks(session: Session, report: Report, start: dt.datetime, end: dt.datetime) -> None:
    S = ConversationSummary
    period = (S.first_at >= start, S.first_at < end)
    total = session.execute(
        select(
            func.coalesce(func.sum(S.user_messages), 0), func.coalesce(func.sum(S.fallbacks), 0)
        ).where(*period)
    ).one()
    report[OVERALL].user_messages, report[OVERALL].fallbacks = int(total[0]), int(total[1])
    rows = session.execute(
        select(ConversationTag.tag, func.sum(S.user_messages), func.sum(S.fallbacks))
        .join(S, S.id == ConversationTag.conversation_id)
        .where(ConversationTag.tag.like("s:%"), *period)
        .group_by(ConversationTag.tag)
    ).all()
    for tag, messages, fallbacks in rows:
        ind = report[tag[2:]]
        ind.user_messages, ind.fallbacks = int(messages or 0), int(fallbacks or 0)


def build_report(
    session: Session,
    start: dt.datetime,
    end: dt.datetime,
    tracker: Engine | None = None,
    tiers: Mapping[str, str] | None = None,
) -> Report:
    """Indicators for [start, end) (naive UTC), keyed by service code; OVERALL is '', and
    TIER + level for each authority level in `tiers` (service code → "province"/"commune")."""
    report = Report()
    report[OVERALL]  # always present
    for tier in PAYMENT_TARGETS:
        report[TIER + tier]
    _payments(session, report, start, end, tiers or {})
    _ratings(session, report, start, end)
    _dossiers(session, report, start, end)
    _reminders(session, report, start, end)
    _submission_times(session, tracker, report, start, end)
    _fallbacks(session, report, start, end)
    return report
