"""The set-based scan agrees with the rules in bot.reminders.rules, is idempotent and honours
opt-outs."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from bot.catalogue.model import Catalogue
from bot.core.db import unit_of_work
from bot.core.models import Business, Dossier, Reminder
from bot.data.seed import seed
from bot.reminders.preferences import postpone, stop
from scheduler.scan import scan
from tests import factories
from tests.due_reference import expected_reminders

TODAY = dt.date(2026, 11, 23)


def created(engine: Engine) -> set[tuple]:
    with unit_of_work(engine) as s:
        return {
            (r.subject_type, r.subject_id, r.service_code, r.event_key, r.stage, r.record_id)
            for r in s.scalars(select(Reminder))
        }


def test_scan_matches_the_reference_rules_and_is_idempotent(
    engine: Engine, catalogue: Catalogue
) -> None:
    seed(engine, catalogue, 300, seed_value=5, today=TODAY)
    total = set()
    for offset in range(0, 60, 6):
        day = TODAY + dt.timedelta(days=offset)
        dry = scan(engine, catalogue, day, dry_run=True)
        counts = scan(engine, catalogue, day)
        assert dry == counts
        total |= expected_reminders(engine, catalogue, day)
        assert created(engine) == total, day
        assert sum(scan(engine, catalogue, day).values()) == 0  # a second scan creates nothing
    assert len(total) >= 5 and len({key[2] for key in total}) >= 3


def _card(session, person, issued: dt.date) -> None:  # type: ignore[no-untyped-def]
    factories.record(session, person, "cccd", number=f"C{person.id}{issued:%Y}", issued_on=issued)


@pytest.mark.parametrize(
    ("born", "issued", "due_age"),
    [
        (dt.date(2001, 1, 20), dt.date(2016, 3, 1), 25),  # card from 15: renew at 25
        (dt.date(2001, 1, 20), dt.date(2024, 3, 1), None),  # within 2 years of 25: next is 40
        (dt.date(1966, 1, 20), dt.date(2020, 5, 1), 60),  # issued at 54: renew at 60
        (dt.date(1966, 1, 20), dt.date(2024, 5, 1), None),  # issued at 58: lifetime card
    ],
)
def test_identity_card_rules(engine: Engine, catalogue: Catalogue, born, issued, due_age) -> None:  # type: ignore[no-untyped-def]
    with unit_of_work(engine) as s:
        person = factories.citizen(s, date_of_birth=born)
        _card(s, person, issued)
    day = dt.date(born.year + (due_age or 25), 1, 20) - dt.timedelta(days=60)
    scan(engine, catalogue, day)
    keys = {k[3] for k in created(engine) if k[2] == "cccd_doi_the"}
    assert keys == ({f"age:{due_age}"} if due_age else set())


def test_opt_out_postpone_and_open_dossier_suppress_reminders(
    engine: Engine, catalogue: Catalogue
) -> None:
    day = TODAY
    with unit_of_work(engine) as s:
        people = []
        for n in range(4):
            person = factories.citizen(s, cccd=f"06619000{n:04d}", phone=f"090500{n:04d}")
            factories.record(
                s,
                person,
                "tam_tru",
                number=f"T{n}",
                issued_on=dt.date(2024, 1, 1),
                valid_until=day + dt.timedelta(days=30),
            )
            people.append(person)
        stop(s, people[0].id, "tam_tru_gia_han")
        postpone(s, people[1].id, None, day + dt.timedelta(days=3))
        s.add(
            Dossier(
                code="DLK-261120-00001",
                service_code="tam_tru_gia_han",
                citizen_id=people[2].id,
                status="received",
                fields={},
            )
        )
        shop = Business(tax_code="6000000001", name="Cửa hàng", representative_id=people[3].id)
        s.add(shop)
        s.flush()
        factories.record(
            s,
            shop,
            "gp_ban_le_ruou",
            number="R1",
            issued_on=dt.date(2021, 1, 1),
            valid_until=day + dt.timedelta(days=60),
        )
        stop(s, people[3].id, "gp_ban_le_ruou")
        ids = [p.id for p in people]
    assert scan(engine, catalogue, day)["tam_tru_gia_han"] == 1
    assert {k[1] for k in created(engine)} == {ids[3]}
    assert scan(engine, catalogue, day)["gp_ban_le_ruou"] == 0


def test_birth_already_registered_is_not_reminded(engine: Engine, catalogue: Catalogue) -> None:
    with unit_of_work(engine) as s:
        mother = factories.citizen(s, sex="F")
        born = TODAY - dt.timedelta(days=5)  # deadline born + 60, first reminder 55 days before
        factories.record(s, mother, "birth_notice", number="BN1", event_date=born)
        other = factories.citizen(s, cccd="066190009876", phone="0905999999", sex="F")
        factories.record(s, other, "birth_notice", number="BN2", event_date=born)
        factories.record(
            s, other, "birth_registration", number="KS2", event_date=born + dt.timedelta(days=2)
        )
        mother_id = mother.id
    scan(engine, catalogue, TODAY)
    assert {(k[1], k[2]) for k in created(engine)} == {(mother_id, "khai_sinh")}
    with unit_of_work(engine) as s:
        assert s.scalar(select(func.count(Reminder.id))) == 1
