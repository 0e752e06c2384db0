"""Satisfaction ratings (1–5) tied to a dossier and service when there is one."""

from __future__ import annotations

import os

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.models import Dossier, SatisfactionRating


def survey_after() -> str:
    """SURVEY_AFTER=submission (default: ask right after submitting) or completion."""
    value = os.environ.get("SURVEY_AFTER", "submission")
    return value if value in ("submission", "completion") else "submission"


def parse_rating(value: object) -> int | None:
    try:
        rating = int(str(value).strip())
    except ValueError:
        return None
    return rating if 1 <= rating <= 5 else None


def record_rating(
    session: Session,
    rating: int,
    *,
    citizen_id: int | None,
    dossier_code: str | None,
    service_code: str | None,
    channel: str | None,
) -> SatisfactionRating:
    dossier = None
    if dossier_code and citizen_id is not None:
        dossier = session.scalar(
            select(Dossier).where(Dossier.code == dossier_code, Dossier.citizen_id == citizen_id)
        )
    row = SatisfactionRating(
        rating=rating,
        citizen_id=citizen_id,
        dossier_id=dossier.id if dossier else None,
        service_code=dossier.service_code if dossier else service_code,
        channel=channel,
    )
    session.add(row)
    session.flush()
    return row


def add_comment(session: Session, rating_id: int, comment: str) -> None:
    row = session.get(SatisfactionRating, rating_id)
    if row is not None:
        row.comment = " ".join(comment.split())[:1000]
