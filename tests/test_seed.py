"""Demo data: deterministic, valid, and every triggered service has someone due soon."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from bot.catalogue.model import Catalogue
from bot.core.db import unit_of_work
from bot.core.models import Business, Citizen, Record
from bot.data.seed import Generator, seed
from bot.reminders.due import citizens_with_dues
from bot.vietnamese.vn import normalize_phone, validate_cccd

TODAY = dt.date(2026, 11, 23)


def test_generator_is_deterministic(catalogue: Catalogue) -> None:
    a, b = Generator(catalogue, 7, TODAY), Generator(catalogue, 7, TODAY)
    assert [a.citizen(i, i + 1) for i in range(50)] == [b.citizen(i, i + 1) for i in range(50)]
    other = Generator(catalogue, 8, TODAY)
    assert [a.citizen(i, i + 1) for i in range(5)] != [other.citizen(i, i + 1) for i in range(5)]


def test_seeded_people_are_valid_and_unique(engine: Engine, catalogue: Catalogue) -> None:
    report = seed(engine, catalogue, 400, seed_value=3, today=TODAY)
    assert report.citizens == 400 and report.businesses >= 20
    with engine.connect() as conn:
        people = conn.execute(
            select(Citizen.cccd, Citizen.date_of_birth, Citizen.sex, Citizen.phone)
        ).all()
        assert (
            conn.execute(select(func.count()).select_from(Record.__table__)).scalar_one()
            == report.records
        )
    assert len({p.cccd for p in people}) == len({p.phone for p in people}) == 400
    for person in people:
        assert person.cccd.startswith("066")
        validate_cccd(person.cccd, person.date_of_birth, person.sex)
        assert normalize_phone(person.phone) == person.phone


def test_every_triggered_service_is_due_for_someone_within_60_days(
    engine: Engine, catalogue: Catalogue
) -> None:
    seed(engine, catalogue, 300, seed_value=1, today=TODAY)
    due_services = set()
    with unit_of_work(engine) as session:
        for _citizen, items in citizens_with_dues(session, catalogue, TODAY, 60):
            for item in items:
                assert item.due.deadline >= TODAY
                due_services.add(item.service.code)
    triggered = {s.code for s in catalogue.services if s.has_trigger}
    assert len(triggered) == 15  # ly_lich_tu_phap is on request only
    assert due_services == triggered


def test_seed_refuses_a_populated_database_and_ids_continue(
    engine: Engine, catalogue: Catalogue
) -> None:
    seed(engine, catalogue, 30, today=TODAY)
    with pytest.raises(RuntimeError, match="already holds citizens"):
        seed(engine, catalogue, 30, today=TODAY)
    with unit_of_work(engine) as session:  # sequences moved past the explicit ids
        session.add(Business(tax_code="6009999999", name="Công ty mới"))
        session.add(
            Citizen(cccd="066085001234", full_name="Nguyễn Văn An", sex="M",
                    date_of_birth=dt.date(1985, 4, 2))
        )  # fmt: skip
    with engine.connect() as conn:
        assert conn.execute(select(func.max(Citizen.id))).scalar_one() == 31
