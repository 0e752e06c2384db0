"""Deterministic synthetic demo data for Đắk Lắk: citizens, businesses and their records.

Every service with a trigger gets subjects whose deadline falls in the next 60 days ("planted"
rows, about 1 % of subjects per service), on top of a realistic random background. One citizen
in 50 is a parent whose minor child (the next citizen) has a passport to renew or turns 14
within 60 days, the relation recorded as imported population data (`parent_child`).
Generation is streamed in chunks and written with bulk inserts, so it scales to 1,000,000
citizens.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection, Engine

from bot.catalogue.model import (
    AgeMilestoneTrigger,
    Catalogue,
    EventDeadlineTrigger,
    ExpiryTrigger,
    JoinedTrigger,
    Service,
)
from bot.core.clock import utcnow
from bot.core.db import refresh_statistics
from bot.core.models import Business, Citizen, ParentChild, Record
from bot.vietnamese.vn import add_years

CHUNK = 5000
PLANT_EVERY = 100  # one citizen in PLANT_EVERY gets a due record for a given service
BUSINESS_PLANT_EVERY = 20
CITIZENS_PER_BUSINESS = 20
HORIZON_DAYS = 60
FAMILY_EVERY = 50  # one parent with a minor child in FAMILY_EVERY citizens
PARENT_SLOT = 30  # index % FAMILY_EVERY of the parent; the child is the next citizen


@lru_cache(maxsize=1)
def vocabulary() -> dict[str, Any]:
    """Names, places and prefixes the generator draws from (bot/data/demo_data.yml)."""
    words: dict[str, Any] = yaml.safe_load(
        (Path(__file__).parent / "demo_data.yml").read_text(encoding="utf-8")
    )
    return words


@dataclass(frozen=True)
class Plant:
    """One service's planted due record: which kind, for which subject slot."""

    service: Service
    slot: int


def _pick(rng: random.Random, name: str) -> str:
    """A random entry of a vocabulary list; for a mapping, weighted by its values."""
    items: list[str] | dict[str, int] = vocabulary()[name]
    if isinstance(items, dict):
        return rng.choices(list(items), weights=list(items.values()))[0]
    return rng.choice(items)


def _scramble(index: int, modulus: int, salt: int) -> int:
    """A bijection on [0, modulus): unique ID and phone digits without a lookup table."""
    return (index * 7_919 + salt) % modulus


def person_name(rng: random.Random, sex: str) -> str:
    if rng.random() < 0.08:
        prefix = "Y " if sex == "M" else "H'"
        return f"{prefix}{_pick(rng, 'ede_given_names')} {_pick(rng, 'ede_clans')}"
    words = vocabulary()
    family = _pick(rng, "family_names")
    return (
        f"{family} {rng.choice(words['middle_names'][sex])} {rng.choice(words['given_names'][sex])}"
    )


def _address(rng: random.Random, commune: str) -> str:
    if commune.startswith("phường"):
        return f"Số {rng.randint(1, 399)} {_pick(rng, 'streets')}, {commune}, tỉnh Đắk Lắk"
    return f"Thôn {rng.randint(1, 15)}, {commune}, tỉnh Đắk Lắk"


class Generator:
    """Builds rows for citizen index i; the same (seed, today, i) always yields the same rows."""

    def __init__(self, catalogue: Catalogue, seed: int, today: dt.date) -> None:
        self.seed, self.today = seed, today
        citizen_services = [
            s for s in catalogue.services if s.has_trigger and s.subject == "citizen"
        ]
        business_services = [
            s for s in catalogue.services if s.has_trigger and s.subject == "business"
        ]
        self.citizen_plants = [Plant(s, slot) for slot, s in enumerate(citizen_services)]
        self.business_plants = [Plant(s, slot) for slot, s in enumerate(business_services)]
        # Families sit on indexes no service plant uses (plants take index % 100 < their count).
        assert len(self.citizen_plants) <= PARENT_SLOT and PARENT_SLOT + 1 < FAMILY_EVERY

    def _rng(self, kind: str, index: int) -> random.Random:
        return random.Random(f"{self.seed}:{kind}:{index}")

    def _offset(self, index: int) -> dt.timedelta:
        """Days from today to a planted deadline: spread over the next 60 days."""
        return dt.timedelta(days=1 + (index * 37) % HORIZON_DAYS)

    def citizen(self, index: int, row_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        rng = self._rng("citizen", index)
        sex = "M" if rng.random() < 0.5 else "F"
        dob = self.today - dt.timedelta(days=rng.randint(365, 88 * 365))
        plant = self._plant(self.citizen_plants, index)
        records: list[dict[str, Any]] = []
        if plant and isinstance(plant.service.trigger, AgeMilestoneTrigger):
            dob, card = self._planted_id_card(plant.service.trigger, index)
            kind = plant.service.trigger.record_kind
            records.append(self._record(kind, index, row_id, issued_on=card))
        elif plant and isinstance(plant.service.trigger, (EventDeadlineTrigger, JoinedTrigger)):
            sex, dob = "F", self.today - dt.timedelta(days=rng.randint(21 * 365, 38 * 365))
        elif index % FAMILY_EVERY == PARENT_SLOT:
            dob = self.today - dt.timedelta(days=rng.randint(32 * 365, 50 * 365))
        elif self.is_child(index):
            dob, child_record = self._child_document(index, row_id, rng)
            records.append(child_record)
        century_sex = (dob.year // 100 - 19) * 2 + (0 if sex == "M" else 1)
        cccd = f"066{century_sex}{dob.year % 100:02d}{_scramble(index, 1_000_000, self.seed):06d}"
        commune = _pick(rng, "communes")
        citizen = {
            "id": row_id,
            "cccd": cccd,
            "full_name": (
                self._child_name(rng, sex, self.citizen(index - 1, row_id - 1)[0]["full_name"])
                if self.is_child(index)
                else person_name(rng, sex)
            ),
            "date_of_birth": dob,
            "sex": sex,
            "phone": _pick(rng, "phone_prefixes")
            + f"{_scramble(index, 10_000_000, self.seed):07d}",
            "email": None,
            "permanent_address": _address(rng, commune),
            "temporary_address": None,
            "commune": commune,
        }
        if not records and self._age(dob) >= 14:
            issued = self.today - dt.timedelta(days=rng.randint(30, 9 * 365))
            records.append(
                self._record("cccd", index, row_id, issued_on=max(issued, add_years(dob, 14)))
            )
        if plant and not isinstance(plant.service.trigger, AgeMilestoneTrigger):
            records.append(self._planted(plant.service, index, row_id, rng))
        planted_kind = plant.service.record_kind() if plant else None
        if self.is_child(index):
            planted_kind = records[0]["kind"]
        records += self._background(rng, index, row_id, dob, skip=planted_kind)
        if any(r["kind"] == "tam_tru" for r in records):
            citizen["temporary_address"] = _address(rng, _pick(rng, "communes"))
        return citizen, records

    def business(
        self, index: int, row_id: int, representative_id: int
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        rng = self._rng("business", index)
        commune = _pick(rng, "communes")
        business = {
            "id": row_id,
            "tax_code": f"60{_scramble(index, 100_000_000, self.seed):08d}",
            "name": f"{_pick(rng, 'business_types')} {_pick(rng, 'business_names')} {index + 1}",
            "address": _address(rng, commune),
            "commune": commune,
            "phone": "02" + f"{_scramble(index, 1_000_000_000, self.seed):09d}",
            "email": None,
            "representative_id": representative_id,
        }
        plant = self._plant(self.business_plants, index, every=BUSINESS_PLANT_EVERY)
        records = [self._planted(plant.service, index, row_id, rng, business=True)] if plant else []
        for plant_kind in self.business_plants:
            kind = plant_kind.service.record_kind()
            if (not plant or kind != plant.service.record_kind()) and rng.random() < 0.3:
                assert kind is not None  # a service with a trigger names its record kind
                records.append(self._expiring(kind, index, row_id, rng, years=5, business=True))
        return business, records

    def is_child(self, index: int) -> bool:
        """The citizen at `index` is the minor child of the citizen before."""
        return index % FAMILY_EVERY == PARENT_SLOT + 1

    def relation(self, parent: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
        """The `parent_child` row of a family (generated rows of the parent and the child)."""
        return {
            "parent_id": parent["id"],
            "child_id": child["id"],
            "relation": "me" if parent["sex"] == "F" else "cha",
            "ended_on": None,
        }

    def _child_document(
        self, index: int, row_id: int, rng: random.Random
    ) -> tuple[dt.date, dict[str, Any]]:
        """A child's date of birth and the document a parent renews for them within the
        horizon: in turn a passport (5 years for a child under 14) and the card at 14."""
        deadline = self.today + self._offset(index)
        if (index // FAMILY_EVERY) % 2 == 0:
            dob = self.today - dt.timedelta(days=rng.randint(6 * 365, 12 * 365))
            passport = self._record(
                "ho_chieu",
                index,
                row_id,
                issued_on=add_years(deadline, -5),
                valid_until=deadline,
                attributes=self._attributes("ho_chieu", rng),
            )
            return dob, passport
        dob = add_years(deadline, -14)
        return dob, self._record("cccd", index, row_id, issued_on=add_years(dob, 6))

    def _child_name(self, rng: random.Random, sex: str, parent_name: str) -> str:
        """A name in the parent's family: the family name first, or an Ê Đê clan last."""
        if parent_name.startswith(("Y ", "H'")):
            prefix = "Y " if sex == "M" else "H'"
            return f"{prefix}{_pick(rng, 'ede_given_names')} {parent_name.split()[-1]}"
        words = vocabulary()
        middle = rng.choice(words["middle_names"][sex])
        return f"{parent_name.split()[0]} {middle} {rng.choice(words['given_names'][sex])}"

    def _plant(self, plants: list[Plant], index: int, every: int = PLANT_EVERY) -> Plant | None:
        slot = index % every
        return plants[slot] if slot < len(plants) else None

    def _age(self, dob: dt.date) -> int:
        return (
            self.today.year - dob.year - ((self.today.month, self.today.day) < (dob.month, dob.day))
        )

    def _planted_id_card(self, trigger: AgeMilestoneTrigger, index: int) -> tuple[dt.date, dt.date]:
        """A date of birth whose next milestone falls in the horizon, and an old enough card."""
        milestones = trigger.milestones
        age = milestones[(index // PLANT_EVERY) % len(milestones)]
        dob = add_years(self.today + self._offset(index), -age)
        previous = milestones[milestones.index(age) - 1] if age != milestones[0] else age - 4
        return dob, add_years(dob, previous) + dt.timedelta(days=30)

    def _planted(
        self, service: Service, index: int, row_id: int, rng: random.Random, business: bool = False
    ) -> dict[str, Any]:
        trigger, deadline = service.trigger, self.today + self._offset(index)
        kind = service.record_kind()
        assert kind is not None
        if isinstance(trigger, ExpiryTrigger):
            return self._record(
                kind,
                index,
                row_id,
                business=business,
                issued_on=add_years(deadline, -5),
                valid_until=deadline,
                attributes=self._attributes(kind, rng),
            )
        within = trigger.within_days  # type: ignore[union-attr]
        return self._record(
            kind,
            index,
            row_id,
            event_date=deadline - dt.timedelta(days=within),
            attributes=self._attributes(kind, rng),
        )

    def _background(
        self, rng: random.Random, index: int, row_id: int, dob: dt.date, skip: str | None
    ) -> list[dict[str, Any]]:
        age, out = self._age(dob), []
        for kind, share, years, min_age in (
            ("tam_tru", 0.10, 2, 0),
            ("ho_chieu", 0.15, 10, 0),
            ("gplx", 0.35, 10, 18),
            ("the_hdv", 0.005, 5, 21),
        ):
            if kind != skip and age >= min_age and rng.random() < share:
                out.append(self._expiring(kind, index, row_id, rng, years))
        return out

    def _expiring(
        self,
        kind: str,
        index: int,
        row_id: int,
        rng: random.Random,
        years: int,
        business: bool = False,
    ) -> dict[str, Any]:
        issued = self.today - dt.timedelta(days=rng.randint(0, years * 365 - 1))
        return self._record(
            kind,
            index,
            row_id,
            business=business,
            issued_on=issued,
            valid_until=add_years(issued, years),
            attributes=self._attributes(kind, rng),
        )

    def _attributes(self, kind: str, rng: random.Random) -> dict[str, Any]:
        values = {
            "tam_tru": {"dia_chi_tam_tru": _address(rng, _pick(rng, "communes"))},
            "gplx": {"hang": rng.choice(["B", "B", "C1", "C"])},
            "ho_chieu": {"noi_cap": "Cục Quản lý xuất nhập cảnh"},
            "birth_notice": {
                "ten_tre": person_name(rng, "F" if rng.random() < 0.5 else "M"),
                "noi_sinh": "Bệnh viện Đa khoa vùng Tây Nguyên",
            },
            "birth_registration": {"ten_tre": person_name(rng, "M")},
            "death_notice": {"ho_ten_nguoi_mat": person_name(rng, "M"), "quan_he": "Cha"},
            "phuong_tien_do": {
                "loai_phuong_tien": rng.choice(["Cột đo xăng dầu", "Cân ô tô", "Đồng hồ nước"])
            },
        }
        return values.get(kind, {})

    def _record(
        self, kind: str, index: int, row_id: int, business: bool = False, **fields: Any
    ) -> dict[str, Any]:
        return {
            "kind": kind,
            "number": f"{kind.upper()}-{'B' if business else 'C'}{index:08d}",
            "citizen_id": None if business else row_id,
            "business_id": row_id if business else None,
            "issued_on": fields.get("issued_on"),
            "valid_until": fields.get("valid_until"),
            "event_date": fields.get("event_date"),
            "attributes": fields.get("attributes", {}),
            "source": "seed",
        }


@dataclass
class SeedReport:
    citizens: int = 0
    businesses: int = 0
    records: int = 0
    families: int = 0


def _stamp(rows: list[dict[str, Any]], now: dt.datetime) -> list[dict[str, Any]]:
    for row in rows:
        row["created_at"] = row["updated_at"] = now
    return rows


def _chunks(total: int) -> Iterator[range]:
    for start in range(0, total, CHUNK):
        yield range(start, min(start + CHUNK, total))


def seed(
    engine: Engine,
    catalogue: Catalogue,
    citizens: int,
    seed_value: int = 1,
    today: dt.date | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SeedReport:
    """Insert synthetic citizens (and one business per 20 of them) into an empty database."""
    gen = Generator(catalogue, seed_value, today or dt.date.today())
    report = SeedReport()
    n_business = max(BUSINESS_PLANT_EVERY, citizens // CITIZENS_PER_BUSINESS) if citizens else 0
    with engine.begin() as conn:
        if conn.execute(select(func.count()).select_from(Citizen.__table__)).scalar_one():
            raise RuntimeError("the database already holds citizens; seed fills an empty one")
        for chunk in _chunks(citizens):
            rows, records, families = [], [], []
            for i in chunk:
                citizen, recs = gen.citizen(i, i + 1)
                rows.append(citizen)
                records += recs
                if gen.is_child(i) and len(rows) > 1:  # the parent: the row before, same chunk
                    families.append(gen.relation(rows[-2], citizen))
            _insert(conn, rows, records, Citizen.__table__, report)
            if families:
                conn.execute(ParentChild.__table__.insert(), _stamp(families, utcnow()))
            report.citizens += len(rows)
            report.families += len(families)
            if progress:
                progress(report.citizens, citizens)
        for chunk in _chunks(n_business):
            rows, records = [], []
            for j in chunk:
                business, recs = gen.business(j, j + 1, representative_id=(j * 13) % citizens + 1)
                rows.append(business)
                records += recs
            _insert(conn, rows, records, Business.__table__, report)
            report.businesses += len(rows)
        _reset_sequences(conn)
    refresh_statistics(engine)
    return report


def _insert(
    conn: Connection,
    rows: list[dict[str, Any]],
    records: list[dict[str, Any]],
    table: Any,
    report: SeedReport,
) -> None:
    now = utcnow()
    conn.execute(table.insert(), _stamp(rows, now))
    if records:
        conn.execute(Record.__table__.insert(), _stamp(records, now))
    report.records += len(records)


def _reset_sequences(conn: Connection) -> None:
    """Explicit ids bypass PostgreSQL sequences; move them past the inserted rows."""
    if conn.dialect.name != "postgresql":
        return
    for table in ("citizens", "businesses"):
        conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
            )
        )
