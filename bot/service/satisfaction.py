"""Satisfaction ratings (1–5) tied to a dossier and service when there is one."""

from __future__ import annotations

import os

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.models import Dossier, SatisfactionRating
from bot.dossiers.ownership import owned_by


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
            select(Dossier).where(Dossier.code == dossier_code, owned_by(citizen_id))
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


SURVEY_KEY = "survey:"  # delivery key (and template tracking id) of a rating request: + code


def survey_key(dossier_code: str) -> str:
    return SURVEY_KEY + dossier_code


def rating_from_template(
    session: Session, citizen_id: int | None, tracking_id: str, rate: object, note: object
) -> SatisfactionRating | None:
    """A rating given on Zalo's 1–5 star template. It counts only when the template was a
    survey of one of the rater's own dossiers (the tracking id names it) and the rate is 1–5;
    the rater is the citizen bound to the sending Zalo user, never someone the event names."""
    rating = parse_rating(rate)
    if citizen_id is None or rating is None or not tracking_id.startswith(SURVEY_KEY):
        return None
    code = tracking_id[len(SURVEY_KEY) :]
    owned = session.scalar(select(Dossier.id).where(Dossier.code == code, owned_by(citizen_id)))
    if owned is None:
        return None
    row = record_rating(
        session, rating, citizen_id=citizen_id, dossier_code=code, service_code=None, channel="zalo"
    )
    if isinstance(note, str) and note.strip():
        add_comment(session, row.id, note)
    return row
