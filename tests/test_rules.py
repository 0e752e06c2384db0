import datetime as dt

import pytest

from bot.catalogue import Catalogue
from bot.rules import due_for_record, id_card_expiry, reminder_dates

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
