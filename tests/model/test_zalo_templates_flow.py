"""Zalo template messages end to end, with the running Rasa server's Zalo channel and the fake
Zalo API: citizens outside the 48-hour chat window get templates by user id; once the OA's
daily quota is spent the next reminder goes by SMS; a completion told by template is followed
by the 1–5 star rating template (a customer-care template, only in its hours), and the star
the citizen taps comes back through the signed webhook as a recorded rating."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from bot.catalogue.model import get_catalogue
from bot.core.clock import to_local, utcnow
from bot.core.db import make_engine, unit_of_work
from bot.core.models import ChannelActivity, Dossier, DossierStatusChange, SatisfactionRating
from bot.identity.linking import bind
from bot.service.satisfaction import survey_key
from connectors.senders import open_deliverer
from connectors.zalo_api import event_mac
from scheduler.dispatch import DispatchConfig, dispatch
from scheduler.notices import send_status_notices
from scheduler.scan import scan
from tests import factories
from tests.fakes import FakeZalo
from tests.model.server import TOKEN, Servers, copy_db
from tests.model.test_reminder_end_to_end import APP_ID, APP_SECRET, OA_SECRET, OwnLoop, zalo_env

pytestmark = [pytest.mark.model, pytest.mark.filterwarnings("ignore")]
ALWAYS = DispatchConfig(start=dt.time(0, 0), end=dt.time(23, 59, 59))
USERS = ("61424948001", "61424948002")
TEMPLATES = """\
EXTERNAL_reminder:
  template_id: 'remind01'
  params: {ma_nhac: reminder_id, thu_tuc: service}
dossier_status:
  template_id: 'status01'
  params: {ma_ho_so: dossier_code, trang_thai: status}
satisfaction:
  template_id: 'rate01'
  tag: 2
  params: {ma_ho_so: dossier_code}
"""


def hours_excluding_now() -> str:
    return "13:00-14:00" if to_local(utcnow()).hour < 12 else "01:00-02:00"


def seed(engine, today: dt.date) -> list[str]:  # type: ignore[no-untyped-def]
    """Two followers due for tam_tru_gia_han, last seen on Zalo a week ago, each with a
    dossier an officer has just completed."""
    codes = []
    with unit_of_work(engine) as s:
        for n, user in enumerate(USERS, 1):
            person = factories.citizen(s, cccd=f"06619000{n:04d}", phone=f"090500{n:04d}")
            factories.record(
                s,
                person,
                "tam_tru",
                issued_on=dt.date(2024, 12, 1),
                valid_until=today + dt.timedelta(days=30),
                attributes={"dia_chi_tam_tru": "45 Phan Bội Châu"},
            )
            bind(s, "zalo", f"zalo:{user}", person, "otp")
            s.add(
                ChannelActivity(
                    sender_id=f"zalo:{user}",
                    channel="zalo",
                    last_inbound_at=utcnow() - dt.timedelta(days=7),
                )
            )
            dossier = Dossier(
                code=f"DLK-261206-0010{n}",
                service_code="gplx_doi",
                citizen_id=person.id,
                status="completed",
                fields={},
                submitted_at=utcnow() - dt.timedelta(days=3),
            )
            s.add(dossier)
            s.flush()
            s.add(
                DossierStatusChange(dossier_id=dossier.id, status="completed", changed_by="canbo")
            )
            codes.append(dossier.code)
    return codes


def rating_event(user: str, msg_id: str, code: str, rate: int) -> tuple[bytes, dict[str, str]]:
    body = {
        "app_id": APP_ID,
        "event_name": "user_feedback",
        "sender": {"id": user},
        "recipient": {"id": "366272"},
        "message": {"msg_id": msg_id, "rate": rate, "note": "", "tracking_id": survey_key(code)},
        "timestamp": str(int(utcnow().replace(tzinfo=dt.timezone.utc).timestamp() * 1000)),
    }
    raw = json.dumps(body).encode()
    mac = event_mac(APP_ID, OA_SECRET, raw, body["timestamp"])
    return raw, {"X-ZEvent-Signature": "mac=" + mac, "Content-Type": "application/json"}


async def test_templates_quota_care_hours_and_star_rating(
    tmp_path: Path, sqlite_template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SURVEY_AFTER", "completion")
    fake_loop = OwnLoop()
    fake = fake_loop.run(FakeZalo(APP_SECRET).start())
    url = copy_db(sqlite_template, tmp_path / "app.db")
    engine = make_engine(url)
    today = dt.date.today()
    codes = seed(engine, today)
    (tmp_path / "templates.yml").write_text(TEMPLATES)
    env = zalo_env(fake.url, ZALO_ZNS_TEMPLATES=str(tmp_path / "templates.yml"))
    servers = await asyncio.to_thread(Servers, tmp_path, url, env)
    deliver_env = {
        **env,
        "RASA_URL": f"http://127.0.0.1:{servers.rasa_port}",
        "RASA_AUTH_TOKEN": TOKEN,
        "APP_VAR_DIR": str(tmp_path),
        "ZALO_TEMPLATE_DAILY_QUOTA": "4",
    }
    try:
        # Completions: the first citizen's in the care hours (status + rating template), the
        # second's outside them (status template only; the rating is not sent at all).
        all_day = {**deliver_env, "ZALO_CARE_HOURS": "00:00-23:59:59"}
        async with open_deliverer(engine, all_day) as d:
            await send_status_notices(engine, d.deliver)
        sent = [(m["user_id"], m["template_id"]) for m in fake.zns]
        assert (USERS[0], "status01") in sent and (USERS[0], "rate01") in sent
        assert (USERS[1], "status01") in sent and (USERS[1], "rate01") in sent
        assert len(fake.zns) == 4  # the daily quota (4) is now spent
        # Reminders by template now go by SMS instead (the quota, not the citizen, decides).
        assert scan(engine, get_catalogue(), today)["tam_tru_gia_han"] == 2
        async with open_deliverer(engine, deliver_env) as d:
            rounds = [  # one reminder a round: dispatch spreads them over the day's window
                await dispatch(engine, get_catalogue(), d.deliver, config=ALWAYS) for _ in (1, 2)
            ]
        assert [r.sent for r in rounds] == [1, 1] and len(fake.zns) == 4
        outbox = (tmp_path / "sms_outbox.jsonl").read_text(encoding="utf-8").splitlines()
        assert sorted(json.loads(line)["to"] for line in outbox) == ["0905000001", "0905000002"]

        webhook = f"http://127.0.0.1:{servers.rasa_port}/webhooks/zalo/webhook"
        async with httpx.AsyncClient(timeout=10) as client:
            raw, headers = rating_event(USERS[0], "r1", codes[0], 5)
            mine = await client.post(webhook, content=raw, headers=headers)
            raw, headers = rating_event(USERS[0], "r2", codes[1], 1)  # someone else's dossier
            other = await client.post(webhook, content=raw, headers=headers)
        assert (mine.json(), other.json()) == ({"status": "recorded"}, {"status": "ignored"})
        with unit_of_work(engine) as s:
            stars = s.execute(select(SatisfactionRating.rating, SatisfactionRating.channel)).all()
        assert [tuple(r) for r in stars] == [(5, "zalo")]
    finally:
        await asyncio.to_thread(servers.stop)
        fake_loop.run(fake.stop())
        fake_loop.close()
        engine.dispose()


async def test_the_rating_template_waits_for_its_hours(
    tmp_path: Path, sqlite_template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside the customer-care hours the rating template is not sent, and no other channel
    asks instead (a bare "5" by SMS, outside any conversation, would be misread)."""
    monkeypatch.setenv("SURVEY_AFTER", "completion")
    fake_loop = OwnLoop()
    fake = fake_loop.run(FakeZalo(APP_SECRET).start())
    url = copy_db(sqlite_template, tmp_path / "app.db")
    engine = make_engine(url)
    seed(engine, dt.date.today())
    (tmp_path / "templates.yml").write_text(TEMPLATES)
    env = {
        **zalo_env(fake.url, ZALO_ZNS_TEMPLATES=str(tmp_path / "templates.yml")),
        "ZALO_CARE_HOURS": hours_excluding_now(),
        "RASA_URL": "http://127.0.0.1:9",
        "RASA_AUTH_TOKEN": TOKEN,
        "APP_VAR_DIR": str(tmp_path),
    }
    try:
        async with open_deliverer(engine, env) as d:
            await send_status_notices(engine, d.deliver)
        assert sorted(m["template_id"] for m in fake.zns) == ["status01", "status01"]
        assert not (tmp_path / "sms_outbox.jsonl").exists()
    finally:
        fake_loop.run(fake.stop())
        fake_loop.close()
        engine.dispose()
