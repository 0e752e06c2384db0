"""Property: on random small populations, day by day, the SQL scan selects exactly the reminders
the Python rules in bot.reminders.rules say are due (same subject, service, event key, stage,
record).

Dates are drawn near the values that matter (reminder days in the window, ID-card milestones
and grace limits, the lifetime-card age, 29 February birthdays, equal issue dates, birth
registrations just before or after the notice), so most populations have something due.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert
from sqlalchemy.engine import Engine

from bot.catalogue.model import AgeMilestoneTrigger, load_catalogue
from bot.core.clock import utcnow
from bot.core.config import PROJECT_ROOT
from bot.core.db import make_engine
from bot.core.models import Business, Citizen, Record
from bot.vietnamese.vn import add_years
from scheduler.scan import StageQuery, candidates, stage_queries
from tests.due_reference import expected_by_day

CATALOGUE = load_catalogue(PROJECT_ROOT / "bot" / "catalogue" / "catalogue.yml")
WINDOW_DAYS = 8
# Window starts → people born on 29 February with an ID-card milestone birthday (28 or 29
# February) that a day of the window reaches through its 30-day reminder.
STARTS: dict[dt.date, list[tuple[dt.date, int | None]]] = {
    dt.date(2026, 1, 26): [(dt.date(2012, 2, 29), 14)],
    dt.date(2028, 1, 27): [(dt.date(1988, 2, 29), 40), (dt.date(1968, 2, 29), 60)],
    dt.date(2029, 1, 26): [(dt.date(2004, 2, 29), 25)],
    dt.date(2026, 11, 23): [],
}

CARD = CATALOGUE.service("cccd_doi_the")
assert isinstance(CARD.trigger, AgeMilestoneTrigger)
CARD_RULE: AgeMilestoneTrigger = CARD.trigger
# Record kind → the service it triggers (reminder stages, offset from the record's date).
BY_KIND = {
    kind: s
    for s in CATALOGUE.services
    if s.remind_days_before and (kind := s.record_kind()) is not None
}
CITIZEN_KINDS = sorted(
    k for k, s in BY_KIND.items() if s.subject == "citizen" and k not in ("cccd", "birth_notice")
)
BUSINESS_KINDS = sorted(k for k, s in BY_KIND.items() if s.subject == "business")


def _days(n: int) -> dt.timedelta:
    return dt.timedelta(days=n)


@st.composite
def _due_date(draw: st.DrawFn, kind: str, start: dt.date) -> dt.date | None:
    """A record date whose deadline falls near a reminder stage of a day in the window."""
    service = BY_KIND[kind]
    if draw(st.integers(0, 9)) == 0:
        return None
    offset = getattr(service.trigger, "within_days", 0)
    stage = draw(st.sampled_from(service.remind_days_before))
    return start + _days(stage - offset + draw(st.integers(-2, WINDOW_DAYS + 1)))


@st.composite
def _date_of_birth(draw: st.DrawFn, start: dt.date) -> tuple[dt.date, int | None]:
    """A date of birth and the milestone age it aims at (a birthday on a reminder day)."""
    choice = draw(st.integers(0, 7))
    if choice == 0 and STARTS[start]:
        return draw(st.sampled_from(STARTS[start]))
    if choice == 1:
        return draw(st.dates(dt.date(1950, 1, 1), dt.date(2020, 12, 31))), None
    age = draw(st.sampled_from(CARD_RULE.milestones))
    stage = draw(st.sampled_from(CARD.remind_days_before))
    birthday = start + _days(stage + draw(st.integers(-1, WINDOW_DAYS)))
    return add_years(birthday, -age), age


@st.composite
def _card_issued(
    draw: st.DrawFn, dob: dt.date, age: int | None, earlier: list[dt.date | None]
) -> dt.date | None:
    """Near the grace limits around the aimed milestone (a card due there lies between the
    previous milestone's limit and this one's), near the lifetime age, anywhere, or on the
    same day as an earlier card."""
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return None
    if choice == 1 and earlier:
        return draw(st.sampled_from(earlier))
    if choice <= 6:
        ages = CARD_RULE.milestones
        index = ages.index(age) if age is not None else draw(st.integers(0, len(ages) - 1))
        index -= draw(st.integers(0, 1)) if index > 0 else 0
        limit = add_years(add_years(dob, ages[index]), -CARD_RULE.grace_years)
        return limit + _days(draw(st.integers(-2, 2)))
    if choice == 7:
        return add_years(dob, CARD_RULE.no_expiry_from_age) + _days(draw(st.integers(-2, 2)))
    return dob + _days(draw(st.integers(10 * 365, 70 * 365)))


@st.composite
def populations(draw: st.DrawFn) -> tuple[dt.date, dict[str, list[dict[str, Any]]]]:
    """A window start and the rows of ≤ 6 citizens, ≤ 2 businesses and their records."""
    start = draw(st.sampled_from(sorted(STARTS)))
    citizens: list[dict[str, Any]] = []
    businesses: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []

    def add_record(kind: str, owner: str, owner_id: int, **dates: dt.date | None) -> None:
        records.append(
            {
                "id": len(records) + 1,
                "kind": kind,
                "number": f"N{len(records) + 1}",
                "citizen_id": owner_id if owner == "citizen" else None,
                "business_id": owner_id if owner == "business" else None,
                **{"issued_on": None, "valid_until": None, "event_date": None, **dates},
            }
        )

    for cid in range(1, draw(st.integers(1, 6)) + 1):
        dob, age = draw(_date_of_birth(start))
        citizens.append(
            {"id": cid, "cccd": f"{cid:012d}", "full_name": f"Người {cid}", "sex": "F"}
            | {"date_of_birth": dob}
        )
        issued: list[dt.date | None] = []
        for _ in range(draw(st.integers(0, 3))):
            issued.append(draw(_card_issued(dob, age, issued)))
            add_record("cccd", "citizen", cid, issued_on=issued[-1])
        for _ in range(draw(st.integers(0, 2))):
            born = draw(_due_date("birth_notice", start))
            add_record("birth_notice", "citizen", cid, event_date=born)
            for _ in range(draw(st.integers(0, 2))):
                base = born or start
                when = base + _days(draw(st.integers(-4, 4)))
                add_record("birth_registration", "citizen", cid, event_date=when)
        for _ in range(draw(st.integers(0, 2))):
            kind = draw(st.sampled_from(CITIZEN_KINDS))
            column = "valid_until" if BY_KIND[kind].trigger.rule == "expiry" else "event_date"
            add_record(kind, "citizen", cid, **{column: draw(_due_date(kind, start))})
    for bid in range(1, draw(st.integers(0, 2)) + 1):
        owner = draw(st.integers(1, len(citizens)))
        businesses.append(
            {"id": bid, "tax_code": f"60{bid:08d}", "name": f"Cơ sở {bid}"}
            | {"representative_id": owner}
        )
        for _ in range(draw(st.integers(1, 2))):
            kind = draw(st.sampled_from(BUSINESS_KINDS))
            add_record(kind, "business", bid, valid_until=draw(_due_date(kind, start)))
    return start, {"citizens": citizens, "businesses": businesses, "records": records}


@cache
def _queries(day: dt.date) -> tuple[StageQuery, ...]:
    """A day's scan queries, built once: building them costs more than running them here."""
    return tuple(stage_queries(CATALOGUE, day, utcnow()))


@pytest.fixture(scope="module")
def scan_db(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """One migrated SQLite copy for all examples; each example replaces the population."""
    path = tmp_path_factory.mktemp("property") / "scan.db"
    shutil.copy(sqlite_template, path)
    engine = make_engine(f"sqlite:///{path}")
    yield engine
    engine.dispose()


def _load(engine: Engine, rows: dict[str, list[dict[str, Any]]]) -> None:
    with engine.begin() as conn:
        for model in (Record, Business, Citizen):
            conn.execute(delete(model))
        for model, name in ((Citizen, "citizens"), (Business, "businesses"), (Record, "records")):
            if rows[name]:
                conn.execute(insert(model), rows[name])


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(population=populations())
def test_scan_selects_what_the_rules_say_day_by_day(
    scan_db: Engine, population: tuple[dt.date, dict]
) -> None:
    start, rows = population
    _load(scan_db, rows)
    days = [start + _days(n) for n in range(WINDOW_DAYS)]
    wanted = expected_by_day(scan_db, CATALOGUE, days)
    for code in sorted({key[2] for keys in wanted.values() for key in keys}) or ["nothing"]:
        event(f"due: {code}")  # coverage, shown by --hypothesis-show-statistics
    for day in days:
        selected = candidates(scan_db, _queries(day))
        assert len(selected) == len(set(selected)), f"{day}: one reminder selected twice"
        assert set(selected) == wanted[day], day
