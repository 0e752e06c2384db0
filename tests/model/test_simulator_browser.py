"""The phone simulator in headless Chromium, over the real channel code: the Rasa and action
servers run with their channels pointed at the simulator's stand-ins, as `make run` does.

On Zalo: a demo citizen due for tam_tru_gia_han links, the scan and delivery run for the day the
reminder is due, the reminder arrives, the citizen answers and reaches a submitted dossier
code in the same chat; the officer's reply to a hand-off arrives on the phone. On SMS: the same
with numbered replies. Screenshots go to var/test-artifacts/simulator/."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import select

from bot.catalogue.model import get_catalogue
from bot.core.config import PROJECT_ROOT
from bot.core.db import make_engine, unit_of_work
from bot.core.models import Dossier, Handoff
from console.channels import ChannelReplySender
from simulator.app import create_simulator
from simulator.standins import local_env
from tests import factories
from tests.model.server import TOKEN, Servers, copy_db, free_port

pytestmark = [pytest.mark.model, pytest.mark.browser, pytest.mark.filterwarnings("ignore")]
ARTIFACTS = PROJECT_ROOT / "var" / "test-artifacts" / "simulator"
ZALO_CITIZEN, SMS_CITIZEN = "066190004321", "066190008765"


def seed(engine, today: dt.date) -> dt.date:  # type: ignore[no-untyped-def]
    """Two citizens whose temporary residence ends in 40 days; returns the day the first
    reminder stage (30 days before) falls on."""
    ends = today + dt.timedelta(days=40)
    with unit_of_work(engine) as s:
        for cccd, phone, name in (
            (ZALO_CITIZEN, "0905432100", "Đỗ Minh Zalo"),
            (SMS_CITIZEN, "0905876500", "Võ Thị Sương"),
        ):
            person = factories.citizen(s, cccd=cccd, phone=phone, full_name=name)
            factories.record(
                s,
                person,
                "tam_tru",
                issued_on=dt.date(2024, 12, 1),
                valid_until=ends,
                attributes={"dia_chi_tam_tru": "45 Phan Bội Châu, Buôn Ma Thuột"},
            )
    return ends - dt.timedelta(days=30)


async def test_the_proactive_loop_on_the_phone(
    chromium: str, tmp_path: Path, sqlite_template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("APP_VAR_DIR", str(tmp_path))  # the stand-ins' secrets, shared
    monkeypatch.setenv("RASA_AUTH_TOKEN", TOKEN)
    url = copy_db(sqlite_template, tmp_path / "app.db")
    engine = make_engine(url)
    remind_on = seed(engine, dt.date.today())
    port = free_port()
    env = local_env(port)
    servers = await asyncio.to_thread(Servers, tmp_path, url, env)
    rasa_url = f"http://127.0.0.1:{servers.rasa_port}"
    app = create_simulator(engine, get_catalogue(), port, rasa_url=rasa_url, environ=env)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = await browser.new_page(locale="vi-VN", viewport={"width": 400, "height": 860})
            page.set_default_timeout(60_000)
            await page.goto(f"http://127.0.0.1:{port}/")
            await expect(page.locator("#banner")).to_contain_text("MÔ PHỎNG")
            bot = page.locator("#messages .bubble.bot")
            chat = page.locator("#messages")

            async def say(text: str) -> None:
                await page.fill("#text", text)
                await page.click("#send")

            # Zalo: link, then the reminder of the due day, answered in the same chat.
            await page.locator(f"#citizen option[value]:has-text('{ZALO_CITIZEN}')").wait_for(
                state="attached"
            )
            value = await page.locator(f"#citizen option:has-text('{ZALO_CITIZEN}')").get_attribute(
                "value"
            )
            await page.select_option("#citizen", value=value)
            await page.select_option("#channel", "zalo")
            await page.click("#link")
            await expect(bot.last).to_contain_text("Xác thực thành công")
            await page.fill("#run-date", remind_on.isoformat())
            await page.click("#run-day")
            await expect(bot.last).to_contain_text("tạm trú")
            await bot.last.locator(".choice").first.click()  # "Đồng ý": prepare it
            await expect(bot.last).to_contain_text("đồng ý nộp")
            await say("đồng ý nộp")
            await expect(chat).to_contain_text("Mã hồ sơ: DLK-")  # then the fee, the rating
            await page.screenshot(path=str(ARTIFACTS / "zalo.png"), full_page=True)

            # The officer's reply to a hand-off arrives on the phone.
            await say("cho tôi gặp cán bộ")
            await expect(bot.last).to_contain_text("cán bộ")
            with unit_of_work(engine) as s:
                handoff = s.scalar(select(Handoff).order_by(Handoff.id.desc()))
                sender, channel = handoff.sender_id, handoff.channel
            replies = ChannelReplySender(engine, {**os.environ, **env, "RASA_URL": rasa_url})
            try:
                await replies.send(channel, sender, "Chào Ông/Bà, cán bộ xin hỗ trợ ạ.", "r-1")
            finally:
                await replies.close()
            await expect(bot.last).to_contain_text("cán bộ xin hỗ trợ")

            # SMS: no linking (the registry phone links itself), numbered replies.
            value = await page.locator(f"#citizen option:has-text('{SMS_CITIZEN}')").get_attribute(
                "value"
            )
            await page.select_option("#citizen", value=value)
            await page.select_option("#channel", "sms")
            await page.click("#run-day")  # the same day: this citizen's reminder, by SMS
            await expect(bot.last).to_contain_text("tam tru")
            await say("1")  # the reminder's "1. Dong y"
            await expect(bot.last).to_contain_text("dong y nop")
            await say("1")  # the consent's "1"
            await expect(chat).to_contain_text("Ma ho so: DLK-")
            await page.screenshot(path=str(ARTIFACTS / "sms.png"), full_page=True)
            await browser.close()
        with unit_of_work(engine) as s:
            channels = sorted(s.scalars(select(Dossier.channel)).all())
        assert channels == ["sms", "zalo"]
    finally:
        await runner.cleanup()
        await asyncio.to_thread(servers.stop)
        engine.dispose()
