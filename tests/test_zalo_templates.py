"""Zalo template messages (ZBS): the sending rules, the configuration, and the 1–5 star rating
template's answer coming back through the signed webhook (real sockets, real database)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from bot.core.db import unit_of_work
from bot.core.models import ChannelBinding, Dossier, SatisfactionRating
from bot.delivery.templates import TemplateRules, TemplateTag, parse_tag
from bot.service.satisfaction import survey_key
from connectors.zalo import ZaloInput
from connectors.zalo_api import load_zns_templates, template_rules_from_env
from tests import factories
from tests.fakes import FakeZalo, serve_channels
from tests.test_channel_zalo import USER, Bot, channel, event, fake, post, signed

__all__ = ["channel", "fake"]  # the Zalo channel fixtures, used by name below
MORNING = dt.datetime(2026, 12, 6, 8, 0)
NIGHT = dt.datetime(2026, 12, 6, 22, 30)
CARE, DEAL = TemplateTag.CUSTOMER_CARE, TemplateTag.TRANSACTION


def test_tags_hours_length_and_quota() -> None:
    rules = TemplateRules(daily_quota=3)
    value = {"ma_ho_so": "DLK-261206-00001"}
    assert rules.refusal(DEAL, 100, value, NIGHT, 0) is None  # transactions: any hour
    assert rules.refusal(CARE, 100, value, MORNING, 0) is None
    assert "07:00–22:00" in (rules.refusal(CARE, 100, value, NIGHT, 0) or "")
    assert rules.refusal(CARE, 0, value, MORNING.replace(hour=6, minute=59), 0) is not None
    assert rules.refusal(CARE, 0, value, MORNING.replace(hour=7, minute=0), 0) is None
    assert rules.refusal(CARE, 0, value, MORNING.replace(hour=22, minute=0), 0) is not None
    assert "400" in (rules.refusal(DEAL, 385, value, MORNING, 0) or "")  # 385 + 16 > 400
    assert rules.refusal(DEAL, 384, value, MORNING, 0) is None  # exactly 400
    assert "quota" in (rules.refusal(DEAL, 0, value, MORNING, 3) or "")
    assert TemplateRules().refusal(DEAL, 0, value, MORNING, 10**6) is None  # no known cap
    assert rules.refusal(TemplateTag.PROMOTION, 0, value, MORNING, 0) is not None


def test_promotional_templates_are_refused_when_configured(tmp_path: Path) -> None:
    assert parse_tag("2") is CARE and parse_tag(1) is DEAL
    for bad in ("3", 3, "x", 0):
        with pytest.raises(ValueError):
            parse_tag(bad)
    path = tmp_path / "templates.yml"
    path.write_text("offer:\n  template_id: 'p1'\n  tag: 3\n  params: {}\n")
    with pytest.raises(ValueError, match="never used"):
        load_zns_templates(str(path))
    path.write_text("satisfaction:\n  template_id: 'r1'\n  tag: 2\n  fixed_chars: 120\n")
    loaded = load_zns_templates(str(path))["satisfaction"]
    assert (loaded.tag, loaded.fixed_chars, loaded.params) == (CARE, 120, {})


def test_quota_and_hours_come_from_the_environment() -> None:
    rules = template_rules_from_env(
        {"ZALO_TEMPLATE_DAILY_QUOTA": "500", "ZALO_CARE_HOURS": "08:00-20:00"}
    )
    assert rules.daily_quota == 500 and rules.care_hours == (dt.time(8), dt.time(20))
    assert template_rules_from_env({}).daily_quota is None


def seed_survey(engine: Engine, owner_bound: bool) -> tuple[str, str]:
    """A completed dossier of one citizen, and another citizen's; the Zalo user is bound to
    the first citizen when `owner_bound`, else to the second."""
    with unit_of_work(engine) as s:
        owner = factories.citizen(s)
        other = factories.citizen(s, cccd="066190005678", phone="0912345678")
        codes = []
        for person, number in ((owner, 1), (other, 2)):
            dossier = Dossier(
                code=f"DLK-261206-0000{number}",
                service_code="gplx_doi",
                citizen_id=person.id,
                status="completed",
                fields={},
            )
            s.add(dossier)
            codes.append(dossier.code)
        bound = owner if owner_bound else other
        s.add(ChannelBinding(channel="zalo", channel_user_id=f"zalo:{USER}", citizen_id=bound.id))
    return codes[0], codes[1]


def ratings(engine: Engine) -> list[tuple[int, str | None, str | None]]:
    with unit_of_work(engine) as s:
        rows = s.execute(
            select(SatisfactionRating.rating, Dossier.code, SatisfactionRating.comment).join(
                Dossier, Dossier.id == SatisfactionRating.dossier_id, isouter=True
            )
        ).all()
        return [tuple(r) for r in rows]  # type: ignore[misc]


async def test_a_star_rating_on_the_template_is_recorded_for_its_own_dossier(
    fake: FakeZalo, channel: ZaloInput, engine: Engine
) -> None:
    own, foreign = seed_survey(engine, owner_bound=True)

    def feedback(msg_id: str, code: str, rate: object) -> dict[str, object]:
        return event("user_feedback", msg_id, rate=rate, note="Nhanh", tracking_id=survey_key(code))

    async with serve_channels([channel], Bot()) as url, httpx.AsyncClient() as client:
        first = await post(client, url, *signed(feedback("r-1", own, 5)))
        again = await post(client, url, *signed(feedback("r-1", own, 5)))
        other = await post(client, url, *signed(feedback("r-2", foreign, 1)))
        wrong = await post(client, url, *signed(feedback("r-3", own, 9)))
        forged = await post(client, url, *signed(feedback("r-4", own, 1), secret="guess"))
    answers = [r.json() for r in (first, again, other, wrong)]
    assert answers == [{"status": s} for s in ("recorded", "duplicate", "ignored", "ignored")]
    assert forged.status_code == 401
    assert ratings(engine) == [(5, own, "Nhanh")]
    assert fake.sent == []  # a rating is not a message: nothing is said back


async def test_a_stranger_cannot_rate_someone_elses_dossier(
    fake: FakeZalo, channel: ZaloInput, engine: Engine
) -> None:
    own, _ = seed_survey(engine, owner_bound=False)  # the Zalo user is the other citizen
    crafted = event("user_feedback", "r-9", rate=1, tracking_id=survey_key(own))
    async with serve_channels([channel], Bot()) as url, httpx.AsyncClient() as client:
        answer = await post(client, url, *signed(crafted))
    assert answer.json() == {"status": "ignored"} and ratings(engine) == []
