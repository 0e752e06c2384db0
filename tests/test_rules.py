import datetime as dt
from dataclasses import dataclass

import pytest

from bot.catalogue.model import Catalogue
from bot.reminders.rules import (
    counting_records,
    due_for_record,
    dues_for_subject,
    id_card_expiry,
    record_rule,
    reminder_dates,
)

DOB = dt.date(2000, 6, 15)


@pytest.mark.parametrize(
    ("issued_on", "expected"),
    [
        (dt.date(2014, 6, 15), (dt.date(2025, 6, 15), 25)),  # issued at 14 → renew at 25
        (dt.date(2023, 6, 14), (dt.date(2025, 6, 15), 25)),  # one day before the 2-year window
        (dt.date(2023, 6, 15), (dt.date(2040, 6, 15), 40)),  # inside the window → valid to 40
        (dt.date(2024, 12, 1), (dt.date(2040, 6, 15), 40)),
        (dt.date(2039, 1, 1), (dt.date(2060, 6, 15), 60)),  # within 2 years of 40 → 60
        (dt.date(2010, 1, 1), (dt.date(2014, 6, 15), 14)),  # child's card → renew at 14
        (dt.date(2013, 1, 1), (dt.date(2025, 6, 15), 25)),  # within 2 years of 14 → 25
    ],
)
def test_id_card_milestones_with_two_year_rule(
    catalogue: Catalogue, issued_on: dt.date, expected: tuple[dt.date, int]
) -> None:
    trigger = catalogue.service("cccd_doi_the").trigger
    assert id_card_expiry(DOB, issued_on, trigger) == expected


@pytest.mark.parametrize(
    "issued_on", [dt.date(2058, 6, 15), dt.date(2059, 1, 1), dt.date(2070, 1, 1)]
)
def test_cards_issued_at_58_or_later_never_expire(catalogue: Catalogue, issued_on: dt.date) -> None:
    trigger = catalogue.service("cccd_doi_the").trigger
    assert id_card_expiry(DOB, issued_on, trigger) is None


def test_card_issued_just_before_58_expires_at_60(catalogue: Catalogue) -> None:
    trigger = catalogue.service("cccd_doi_the").trigger
    assert id_card_expiry(DOB, dt.date(2058, 6, 14), trigger) == (dt.date(2060, 6, 15), 60)


def test_expiry_rule_and_reminder_stages(catalogue: Catalogue) -> None:
    service = catalogue.service("tam_tru_gia_han")
    due = due_for_record(
        service, record_id=7, issued_on=None, valid_until=dt.date(2026, 12, 31), event_date=None
    )
    assert due is not None
    assert due.deadline == dt.date(2026, 12, 31)
    assert due.filing_deadline == dt.date(2026, 12, 16)  # file at least 15 days before
    assert reminder_dates(service, due) == [
        (30, dt.date(2026, 12, 1)),
        (20, dt.date(2026, 12, 11)),
        (15, dt.date(2026, 12, 16)),
    ]
    assert due.overlaps(service, dt.date(2026, 11, 25), dt.date(2026, 12, 1))
    assert not due.overlaps(service, dt.date(2026, 10, 1), dt.date(2026, 11, 30))
    assert not due.overlaps(service, dt.date(2027, 1, 1), dt.date(2027, 2, 1))


def test_birth_must_be_registered_within_60_days(catalogue: Catalogue) -> None:
    service = catalogue.service("khai_sinh")
    due = due_for_record(
        service, record_id=1, issued_on=None, valid_until=None, event_date=dt.date(2026, 11, 1)
    )
    assert due is not None and due.deadline == dt.date(2026, 12, 31)
    assert reminder_dates(service, due)[0] == (55, dt.date(2026, 11, 6))


def test_records_without_the_needed_date_create_nothing(catalogue: Catalogue) -> None:
    for code in ("tam_tru_gia_han", "khai_tu", "cccd_doi_the", "ly_lich_tu_phap"):
        service = catalogue.service(code)
        assert (
            due_for_record(service, record_id=1, issued_on=None, valid_until=None, event_date=None)
            is None
        )


@dataclass(frozen=True)
class Rec:
    id: int
    kind: str
    citizen_id: int | None = 1
    business_id: int | None = None
    issued_on: dt.date | None = None
    valid_until: dt.date | None = None
    event_date: dt.date | None = None


def test_rules_state_what_the_scan_compiles(catalogue: Catalogue) -> None:
    birth = record_rule(catalogue.service("khai_sinh"))
    card = record_rule(catalogue.service("cccd_doi_the"))
    permit = record_rule(catalogue.service("gp_ban_le_ruou"))
    assert birth is not None and card is not None and permit is not None
    assert (birth.record_kind, birth.date_column, birth.offset_days) == (
        "birth_notice",
        "event_date",
        60,
    )
    assert birth.fulfilled_by == "birth_registration" and not birth.latest_only
    assert card.latest_only and card.age_milestones is not None
    assert permit.subject == "business" and permit.key_with_deadline
    assert record_rule(catalogue.service("ly_lich_tu_phap")) is None


def test_a_registered_birth_is_fulfilled(catalogue: Catalogue) -> None:
    service = catalogue.service("khai_sinh")
    rule = record_rule(service)
    assert rule is not None
    born = dt.date(2026, 11, 1)
    notice = Rec(1, "birth_notice", event_date=born)
    assert [d.record_id for d in dues_for_subject(service, [notice])] == [1]
    same_day = Rec(2, "birth_registration", event_date=born)
    assert dues_for_subject(service, [notice, same_day]) == []
    earlier = Rec(3, "birth_registration", event_date=born - dt.timedelta(days=1))
    assert len(dues_for_subject(service, [notice, earlier])) == 1  # an older child's
    someone_else = Rec(4, "birth_registration", citizen_id=2, event_date=born)
    assert counting_records(rule, [notice, someone_else]) == [notice]


def test_only_the_newest_card_counts_ties_go_to_the_higher_id(catalogue: Catalogue) -> None:
    service = catalogue.service("cccd_doi_the")
    rule = record_rule(service)
    assert rule is not None
    child = Rec(1, "cccd", issued_on=dt.date(2014, 6, 1))  # due at 25 in 2025
    renewed = Rec(2, "cccd", issued_on=dt.date(2024, 1, 1))  # due at 40 in 2040
    undated = Rec(3, "cccd")
    assert counting_records(rule, [renewed, child, undated]) == [renewed]
    dues = dues_for_subject(service, [child, renewed, undated], DOB)
    assert [(d.event_key, d.record_id) for d in dues] == [("age:40", 2)]
    twin = Rec(4, "cccd", issued_on=renewed.issued_on)
    assert counting_records(rule, [twin, renewed]) == [twin]
    other = Rec(5, "cccd", citizen_id=2, issued_on=dt.date(2025, 1, 1))
    assert counting_records(rule, [child, other]) == [child, other]  # each person's own newest
