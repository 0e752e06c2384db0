"""Small builders for citizens, businesses and records in a real test database."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from bot.core.models import Business, Citizen, Record


def citizen(
    session: Session,
    cccd: str = "066190001234",
    phone: str | None = "0905123456",
    **extra: Any,
) -> Citizen:
    person = Citizen(
        cccd=cccd,
        full_name=extra.pop("full_name", "Nguyễn Văn An"),
        date_of_birth=extra.pop("date_of_birth", dt.date(1990, 5, 17)),
        sex=extra.pop("sex", "M"),
        phone=phone,
        permanent_address=extra.pop("permanent_address", "12 Lê Duẩn, Buôn Ma Thuột"),
        **extra,
    )
    session.add(person)
    session.flush()
    return person


def record(session: Session, owner: Citizen | Business, kind: str, **fields: Any) -> Record:
    row = Record(
        kind=kind,
        number=fields.pop("number", f"{kind.upper()}-{owner.id}"),
        citizen_id=owner.id if isinstance(owner, Citizen) else None,
        business_id=owner.id if isinstance(owner, Business) else None,
        attributes=fields.pop("attributes", {}),
        **fields,
    )
    session.add(row)
    session.flush()
    return row
