"""End to end: a citizen due for tam_tru_gia_han → scan → dispatch through the fake Zalo API →
"đồng ý" on the Zalo webhook → pre-filled summary → "đồng ý nộp" → dossier, reminder converted."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from bot.catalogue.model import get_catalogue
from bot.core.db import make_engine, unit_of_work
from bot.core.models import Dossier, Reminder
from bot.delivery.channel_state import touch_activity
from bot.identity.linking import bind
from connectors.senders import open_deliverer
from scheduler.dispatch import DispatchConfig, dispatch
from scheduler.scan import scan
from tests import factories
from tests.fakes import FakeZalo, zalo_text_event
from tests.model.server import TOKEN, Servers, copy_db

pytestmark = [pytest.mark.model, pytest.mark.filterwarnings("ignore")]
APP_ID, APP_SECRET, OA_SECRET, USER = "2553928453557884079", "app-secret", "oa-secret", "61424948"
ALWAYS = DispatchConfig(start=dt.time(0, 0), end=dt.time(23, 59, 59))


def zalo_env(url: str, **extra: str) -> dict[str, str]:
    """The Zalo channel of the servers (and of the deliverer) pointed at a fake Zalo API."""
    return {
        "ZALO_APP_ID": APP_ID,
        "ZALO_APP_SECRET": APP_SECRET,
        "ZALO_OA_SECRET": OA_SECRET,
        "ZALO_API_URL": url,
        "ZALO_OAUTH_URL": url,
        "ZALO_ZNS_URL": url,
        "ZALO_REFRESH_TOKEN": "refresh-0",
        **extra,
    }


class OwnLoop:
    """Runs a fake API in a thread of its own, so blocking client code cannot stall it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


async def said_to_user(fake: FakeZalo, start: int, needle: str, seconds: float = 60) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        texts = [m.get("message", {}).get("text", "") for m in fake.sent[start:]]
        if any(needle in t for t in texts):
            return "\n".join(texts)
        await asyncio.sleep(0.2)
    raise AssertionError(f"'{needle}' never reached the Zalo API: {fake.sent[start:]}")


async def test_reminder_to_dossier_through_zalo(tmp_path: Path, sqlite_template: Path) -> None:
    fake_loop = OwnLoop()
    fake = fake_loop.run(FakeZalo(APP_SECRET).start())
    url = copy_db(sqlite_template, tmp_path / "app.db")
    engine = make_engine(url)
    today = dt.date.today()
    with unit_of_work(engine) as s:
        person = factories.citizen(s)
        factories.record(
            s,
            person,
            "tam_tru",
            issued_on=dt.date(2024, 12, 1),
            valid_until=today + dt.timedelta(days=30),
            attributes={"dia_chi_tam_tru": "45 Phan Bội Châu, Buôn Ma Thuột"},
        )
        bind(s, "zalo", f"zalo:{USER}", person, "otp")
    touch_activity(engine, f"zalo:{USER}", "zalo")  # the citizen wrote recently: chat window open
    env = zalo_env(fake.url)
    servers = await asyncio.to_thread(Servers, tmp_path, url, env)
    try:
        assert scan(engine, get_catalogue(), today)["tam_tru_gia_han"] == 1
        deliver_env = {
            **env,
            "RASA_URL": f"http://127.0.0.1:{servers.rasa_port}",
            "RASA_AUTH_TOKEN": TOKEN,
            "APP_VAR_DIR": str(tmp_path),
        }
        async with open_deliverer(engine, deliver_env) as deliverer:
            report = await dispatch(engine, get_catalogue(), deliverer.deliver, config=ALWAYS)
        assert report.sent == 1
        reminder_text = await said_to_user(fake, 0, "tạm trú")
        assert "Trả lời 1" in reminder_text
        webhook = f"http://127.0.0.1:{servers.rasa_port}/webhooks/zalo/webhook"
        async with httpx.AsyncClient(timeout=10) as client:
            start = len(fake.sent)
            raw, headers = zalo_text_event(APP_ID, OA_SECRET, USER, "đồng ý", "m-1")
            assert (await client.post(webhook, content=raw, headers=headers)).status_code == 200
            summary = await said_to_user(fake, start, "đồng ý nộp")
            assert "Phan Bội Châu" in summary
            start = len(fake.sent)
            raw, headers = zalo_text_event(APP_ID, OA_SECRET, USER, "đồng ý nộp", "m-2")
            assert (await client.post(webhook, content=raw, headers=headers)).status_code == 200
            done = await said_to_user(fake, start, "Mã hồ sơ")
        with unit_of_work(engine) as s:
            dossier = s.scalar(select(Dossier))
            assert dossier.code in done and dossier.channel == "zalo"
            assert s.scalar(select(Reminder)).state == "converted"
    finally:
        await asyncio.to_thread(servers.stop)
        fake_loop.run(fake.stop())
        fake_loop.close()
        engine.dispose()
