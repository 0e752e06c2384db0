"""Whose dues a citizen may see and act on: their own, and those of their minor children.

The parent–child relation comes only from imported population data (`ParentChild`, import kind
`parent_child`), never from what a sender types: a child is reached through the linked parent
(`children_of`, `child_of`), so an ID number or a row id someone types names nobody. A child
counts while under 18 at today's date (from the registry's date of birth) and while the
relation has not ended; an adult child is nobody's to see.

Which services a parent sees for a child (in "what is due" and in reminders) and which they
also file for the child is catalogue data (`parent_may`): a child's own documents, whose fields
describe the holder, are filed; birth registration's fields describe the person who asks (the
parent) and the birth notice is recorded under the parent, so it stays the parent's dossier.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bot.catalogue.model import Service
from bot.core.models import ChannelBinding, Citizen, ParentChild
from bot.vietnamese.vn import InvalidValue, add_years, fold

ADULT_AGE = 18
RELATION_LABELS = {"cha": "cha", "me": "mẹ", "giam_ho": "người giám hộ"}
# What department sheets write in `quan_he`, without diacritics and in lower case.
_RELATION_WORDS = {
    "cha": "cha",
    "bo": "cha",
    "me": "me",
    "nguoi giam ho": "giam_ho",
    "giam ho": "giam_ho",
}
_RELATION_SEX = {"cha": "M", "me": "F"}


def parent_sees(service: Service) -> bool:
    """A parent is shown (and reminded of) this service when it is due for their child."""
    return service.parent_may is not None


def parent_files(service: Service) -> bool:
    """A parent may prepare and file this service on the child's behalf."""
    return service.parent_may == "file"


def is_minor(citizen: Citizen, today: dt.date) -> bool:
    """Under 18 on `today` (a child born on 29 February comes of age on 28 February)."""
    return add_years(citizen.date_of_birth, ADULT_AGE) > today


def parse_relation(value: object) -> str:
    """`quan_he` of an import row: cha (bố), mẹ or người giám hộ, with or without diacritics."""
    words = " ".join(fold(str(value)).split())
    if words not in _RELATION_WORDS:
        raise InvalidValue(f"quan hệ '{value}' không hợp lệ (dùng: cha, mẹ, người giám hộ)")
    return _RELATION_WORDS[words]


def relation_problem(
    relation: str, parent_sex: str, parent_born: dt.date, child_born: dt.date
) -> str | None:
    """Why the registry data cannot be this relation (in Vietnamese), or None when it can."""
    if parent_born >= child_born:
        return "người được ghi là cha, mẹ hoặc người giám hộ không lớn tuổi hơn người con"
    expected = _RELATION_SEX.get(relation)
    if expected is not None and parent_sex != expected:
        who = "nam" if expected == "M" else "nữ"
        return f"quan hệ '{RELATION_LABELS[relation]}' cần người là {who} theo dữ liệu dân cư"
    return None


def _current(today: dt.date) -> Any:
    """The relation has not ended by `today` (a SQL condition)."""
    return or_(ParentChild.ended_on.is_(None), ParentChild.ended_on > today)


def children_of(session: Session, parent: Citizen, today: dt.date) -> list[Citizen]:
    """The minors the data names as the parent's children or wards, eldest first."""
    children = session.scalars(
        select(Citizen)
        .join(ParentChild, ParentChild.child_id == Citizen.id)
        .where(ParentChild.parent_id == parent.id, _current(today))
        .order_by(Citizen.date_of_birth, Citizen.id)
    )
    return [child for child in children if is_minor(child, today)]


def child_of(session: Session, parent: Citizen, child_id: int, today: dt.date) -> Citizen | None:
    """The minor with this row id, only among the parent's own children; None otherwise, the
    same for an id of nobody and of someone else's child."""
    return next((c for c in children_of(session, parent, today) if c.id == child_id), None)


def guardian_relation(
    session: Session, parent_id: int, child_id: int, today: dt.date
) -> str | None:
    """The relation (cha, me, giam_ho) under which `parent_id` acts for `child_id` today, or
    None when the data names no such relation or the child is no longer a minor."""
    child = session.get(Citizen, child_id)
    if child is None or not is_minor(child, today):
        return None
    relation: str | None = session.scalar(
        select(ParentChild.relation).where(
            ParentChild.parent_id == parent_id,
            ParentChild.child_id == child_id,
            _current(today),
        )
    )
    return relation


def may_act_for(session: Session, citizen: Citizen, subject_id: int, today: dt.date) -> bool:
    """A citizen acts for themselves and for their minor children, for no one else."""
    return subject_id == citizen.id or (
        guardian_relation(session, citizen.id, subject_id, today) is not None
    )


def parents_of(session: Session, child: Citizen, today: dt.date) -> list[Citizen]:
    """The parents and guardians the data names for a minor, in the order they were imported;
    nobody for an adult."""
    if not is_minor(child, today):
        return []
    return list(
        session.scalars(
            select(Citizen)
            .join(ParentChild, ParentChild.parent_id == Citizen.id)
            .where(ParentChild.child_id == child.id, _current(today))
            .order_by(ParentChild.id)
        )
    )


def reminder_recipient(session: Session, child: Citizen, today: dt.date) -> Citizen | None:
    """Who is told of a minor's reminders: the first named parent linked to a channel, else
    the first named parent; None for an adult or a child the data names no parent for."""
    parents = parents_of(session, child, today)
    if not parents:
        return None
    linked = set(
        session.scalars(
            select(ChannelBinding.citizen_id).where(
                ChannelBinding.citizen_id.in_([p.id for p in parents])
            )
        )
    )
    return next((p for p in parents if p.id in linked), parents[0])
