"""Whose a dossier is, for the citizen who asks and for the notices that go out.

A dossier belongs to its subject (`Dossier.citizen_id`). A parent who filed it for a minor
child (`submit_draft(filed_by=…)`: the consent is the parent's, `acting_for_citizen_id` the
child) follows it too: they see it, pay it and hear about it, since the child usually has no
channel of their own.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select

from bot.core.models import Consent, Dossier


def owned_by(citizen_id: int) -> Any:
    """SQL condition: the citizen's own dossiers and those they filed for a child."""
    filed_for_others = select(Consent.dossier_id).where(
        Consent.citizen_id == citizen_id,
        Consent.acting_for_citizen_id.is_not(None),
        Consent.dossier_id.is_not(None),
    )
    return or_(Dossier.citizen_id == citizen_id, Dossier.id.in_(filed_for_others))


def addressee() -> Any:
    """SQL expression: who is told about a dossier: the parent who filed it for a child, else
    its subject."""
    filer = (
        select(Consent.citizen_id)
        .where(Consent.dossier_id == Dossier.id, Consent.acting_for_citizen_id.is_not(None))
        .order_by(Consent.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    return func.coalesce(filer, Dossier.citizen_id)
