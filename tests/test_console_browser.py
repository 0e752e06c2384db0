"""The officer console in real headless Chromium (Debian's `chromium`, driven by Playwright).

One officer's day: log in, filter to low-confidence conversations, open a transcript (masked),
take a hand-off and reply (the reply reaches a fake Telegram Bot API), close it (Rasa is told to
resume), complete a dossier, export CSV; then a supervisor reveals a conversation. Screenshots
of the main pages go to var/test-artifacts/console/.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from bot.core.clock import utcnow
from bot.core.config import PROJECT_ROOT
from bot.core.db import make_engine, unit_of_work
from bot.core.models import AuditEntry, ChannelBinding, Dossier, Handoff, Payment
from console.channels import ChannelReplySender, HttpRasaApi
from console.indexer import sync_all
from console.web import create_app
from tests import factories
from tests.console_support import PASSWORD, Conversation, add_officers, make_deps, tracker_engine
from tests.fakes import FakeApi, FakeTelegram

pytestmark = pytest.mark.browser
ARTIFACTS = PROJECT_ROOT / "var" / "test-artifacts" / "console"  # screenshots to look at


class FakeRasaServer(FakeApi):
    """Rasa's `POST /conversations/{id}/tracker/events`, recording what the console appends."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, dict[str, Any], str]] = []
        self.triggered: list[tuple[str, dict[str, Any], str]] = []
        self.app.router.add_post("/conversations/{id}/tracker/events", self.append)
        self.app.router.add_post("/conversations/{id}/trigger_intent", self.trigger)

    async def append(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.events.append((request.match_info["id"], body, request.query.get("token", "")))
        return web.json_response({"events": None})

    async def trigger(self, request: web.Request) -> web.Response:
        body = await request.json()
        channel = request.query.get("output_channel", "")
        self.triggered.append((request.match_info["id"], body, channel))
        return web.json_response({"tracker": {"sender_id": request.match_info["id"]}})


@pytest.fixture
async def site(sqlite_template: Path, tmp_path: Path, catalogue) -> AsyncIterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    db = tmp_path / "app.db"
    shutil.copy(sqlite_template, db)
    engine = make_engine(f"sqlite:///{db}")
    tracker = tracker_engine(tmp_path)
    telegram = await FakeTelegram().start()
    rasa = await FakeRasaServer().start()
    env = {
        "RASA_URL": rasa.url,
        "RASA_AUTH_TOKEN": "rasa-token",
        "TELEGRAM_BOT_TOKEN": telegram.token,
        "TELEGRAM_WEBHOOK_SECRET": "secret",
        "TELEGRAM_API_URL": telegram.url,
        "TELEGRAM_TIMEOUT": "5",
    }
    replies = ChannelReplySender(engine, env)
    rasa_api = HttpRasaApi(rasa.url, "rasa-token")
    deps = make_deps(engine, tracker, catalogue, rasa=rasa_api, replies=replies)
    seed(deps)
    runner = web.AppRunner(create_app(deps), access_log=None)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    port = runner.addresses[0][1]
    yield {
        "url": f"http://127.0.0.1:{port}",
        "deps": deps,
        "telegram": telegram,
        "rasa": rasa,
        "env": env,
    }
    await runner.cleanup()
    await replies.close()
    await rasa_api.close()
    await telegram.stop()
    await rasa.stop()
    engine.dispose()
    tracker.dispose()


def seed(deps) -> None:  # type: ignore[no-untyped-def]
    add_officers(deps.engine)
    with unit_of_work(deps.engine) as session:
        citizen = factories.citizen(session)
        session.add(
            ChannelBinding(channel="zalo", channel_user_id="zalo:777001", citizen_id=citizen.id)
        )
        session.add(
            ChannelBinding(
                channel="telegram", channel_user_id="telegram:4242", citizen_id=citizen.id
            )
        )
        session.add(
            Handoff(
                sender_id="telegram:4242",
                channel="telegram",
                status="open",
                reason="cho tôi gặp cán bộ",
                created_at=utcnow() - dt.timedelta(minutes=7),
            )
        )
        session.add(
            Dossier(
                code="DLK-261123-00007",
                service_code="tam_tru_gia_han",
                citizen_id=citizen.id,
                status="processing",
                fields={"values": {"ho_ten": citizen.full_name, "so_dinh_danh": citizen.cccd}},
                channel="zalo",
                submitted_at=utcnow() - dt.timedelta(days=1),
            )
        )
    linked = Conversation(deps.tracker, "zalo:777001", "zalo")
    linked.user("số của tôi là 066190001234", "inform", 0.9, cccd="066190001234")
    linked.bot("Xin chào Ông/Bà Nguyễn Văn An!")
    linked.user("cái giấy kia gia hạn sao", "nlu_fallback", 0.28)
    confident = Conversation(deps.tracker, "telegram:900001", "telegram")
    confident.user("làm hộ chiếu hết bao nhiêu tiền", "ask_fee", 0.98)
    waiting = Conversation(deps.tracker, "telegram:4242", "telegram")
    waiting.user("cho tôi gặp cán bộ", "request_human", 0.99)
    waiting.pause()
    sync_all(deps.engine, deps.tracker)


async def test_an_officers_day_in_chromium(chromium: str, site: dict[str, Any]) -> None:
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    url, deps = site["url"], site["deps"]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        context = await browser.new_context(accept_downloads=True, locale="vi-VN")
        page = await context.new_page()
        page.set_default_timeout(20_000)

        async def sign_in(username: str) -> None:
            await page.goto(f"{url}/login")
            await page.fill("input[name=username]", username)
            await page.fill("input[name=password]", PASSWORD)
            await page.click("button:has-text('Đăng nhập')")
            await expect(page.locator("h1")).to_have_text("Hội thoại")

        await sign_in("canbo")
        await page.screenshot(path=str(ARTIFACTS / "conversations.png"), full_page=True)
        rows = page.locator("#conversations tbody tr")
        await expect(rows).to_have_count(3)

        await page.check("input[name=low]")
        await page.click("button:has-text('Lọc')")
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_contain_text("zalo:***001")

        await rows.first.locator("a").click()
        body = page.locator("ol.transcript")
        await expect(body).to_contain_text("066*******34")
        await expect(body).to_contain_text("N. V. A***")
        await expect(body).to_contain_text("tin cậy thấp")
        assert "066190001234" not in await page.content()
        await page.screenshot(path=str(ARTIFACTS / "transcript.png"), full_page=True)

        await page.goto(f"{url}/handoffs")
        await expect(page.locator("#handoffs")).to_contain_text("7 phút")
        await page.screenshot(path=str(ARTIFACTS / "handoffs.png"), full_page=True)
        await page.click("#handoffs button:has-text('Nhận')")
        await expect(page.locator("#handoff-status")).to_contain_text("canbo")
        await page.fill("textarea[name=text]", "Chào Ông/Bà, cán bộ Trung tâm xin hỗ trợ ạ.")
        await page.click("form.reply button")
        await expect(page.locator(".flash")).to_contain_text("Đã gửi trả lời")
        sent = site["telegram"].sent
        assert [(m["chat_id"], m["text"]) for m in sent] == [
            ("4242", "Chào Ông/Bà, cán bộ Trung tâm xin hỗ trợ ạ.")
        ]
        await page.click("button:has-text('Đóng và trả hội thoại')")
        await expect(page.locator(".flash")).to_contain_text("trợ lý ảo tiếp tục")
        kinds = [(cid, event["event"], token) for cid, event, token in site["rasa"].events]
        assert kinds == [
            ("telegram:4242", "bot", "rasa-token"),
            ("telegram:4242", "resume", "rasa-token"),
        ]

        await page.goto(f"{url}/dossiers")
        await page.click("a:has-text('DLK-261123-00007')")
        await page.select_option("select[name=status]", "completed")
        await page.fill("input[name=note]", "Mời Ông/Bà nhận kết quả tại Bộ phận một cửa.")
        await page.click("button:has-text('Cập nhật trạng thái')")
        await expect(page.locator("#dossier-status")).to_have_text("Đã có kết quả")
        await expect(page.locator("#history")).to_contain_text("canbo")
        await page.screenshot(path=str(ARTIFACTS / "dossier.png"), full_page=True)

        await page.goto(f"{url}/dashboard")
        await expect(page.locator("#overall")).to_be_visible()
        await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

        await page.click("button:has-text('Đăng xuất')")
        await sign_in("giamsat")
        await page.goto(f"{url}/exports")
        async with page.expect_download() as info:
            await page.click("a:has-text('Hội thoại (thông tin chung)')")
        download = await info.value
        saved = ARTIFACTS / "hoi-thoai.csv"
        await download.save_as(saved)
        rows_csv = list(csv.reader(io.StringIO(saved.read_text(encoding="utf-8-sig"))))
        assert len(rows_csv) == 4 and "zalo:***001" in {r[0] for r in rows_csv}
        assert "066190001234" not in saved.read_text(encoding="utf-8-sig")

        await page.goto(f"{url}/conversations?low=1")
        await page.locator("#conversations tbody tr a").first.click()
        await page.fill("input[name=reason]", "Đối chiếu theo đơn khiếu nại số 12")
        await page.click("button:has-text('Hiện dữ liệu')")
        await expect(page.locator("ol.transcript")).to_contain_text("066190001234")
        await expect(page.locator("#masking")).to_contain_text("đã ghi nhật ký")
        await page.screenshot(path=str(ARTIFACTS / "transcript-revealed.png"), full_page=True)
        await browser.close()

    with unit_of_work(deps.engine) as session:
        dossier = session.scalar(select(Dossier).where(Dossier.code == "DLK-261123-00007"))
        change = dossier.history[-1]
        handoff = session.scalar(select(Handoff))
        reveal = session.scalar(
            select(AuditEntry).where(AuditEntry.action == "conversation.reveal")
        )
    assert (change.status, change.changed_by) == ("completed", "canbo")
    await status_notice_reaches_the_citizen(site)
    assert handoff.status == "closed"
    assert reveal.actor == "giamsat" and reveal.detail["reason"].startswith("Đối chiếu")


async def status_notice_reaches_the_citizen(site: dict[str, Any]) -> None:
    """The scheduler's status-notice job turns the officer's change into a turn of the
    citizen's Telegram conversation (Rasa answers EXTERNAL_dossier_status with the notice and,
    for a completed dossier, the rating question)."""
    notices = pytest.importorskip("scheduler.notices", reason="scheduler not in this checkout")
    from connectors.senders import open_deliverer

    async with open_deliverer(site["deps"].engine, site["env"]) as deliverer:
        sent = await notices.send_status_notices(site["deps"].engine, deliverer.deliver)
    assert sent == 1
    ((conversation, body, channel),) = site["rasa"].triggered
    assert (conversation, channel) == ("telegram:4242", "telegram")
    assert body["name"] == "EXTERNAL_dossier_status"
    assert body["entities"]["dossier_code"] == "DLK-261123-00007"
    assert body["entities"]["status"] == "completed"


async def test_payment_filter_and_rate_in_chromium(chromium: str, site: dict[str, Any]) -> None:
    from playwright.async_api import async_playwright, expect

    deps = site["deps"]
    now = utcnow()
    with unit_of_work(deps.engine) as session:
        owner = session.scalar(select(ChannelBinding.citizen_id))
        for number, status in (("00011", "paid"), ("00012", "requested")):
            dossier = Dossier(
                code=f"DLK-261201-{number}",
                service_code="gplx_doi",
                citizen_id=owner,
                status="received",
                fields={},
                channel="zalo",
                submitted_at=now - dt.timedelta(hours=2),
            )
            session.add(dossier)
            session.flush()
            session.add(
                Payment(
                    dossier_id=dossier.id,
                    reference=dossier.code,
                    amount=135000,
                    status=status,
                    due_at=now + dt.timedelta(days=5),
                    paid_at=now if status == "paid" else None,
                )
            )
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = await browser.new_page(locale="vi-VN")
        page.set_default_timeout(20_000)
        await page.goto(f"{site['url']}/login")
        await page.fill("input[name=username]", "canbo")
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button:has-text('Đăng nhập')")
        await page.goto(f"{site['url']}/dossiers")
        rows = page.locator("#dossiers tbody tr")
        await page.select_option("select[name=status]", "all")
        await page.select_option("select[name=payment]", label="Đã nộp lệ phí")
        await page.click("button:has-text('Lọc')")
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_contain_text("DLK-261201-00011")
        await expect(rows.first.locator("td.payment")).to_have_text("Đã nộp lệ phí")
        await page.select_option("select[name=payment]", label="Chưa nộp lệ phí")
        await page.click("button:has-text('Lọc')")
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_contain_text("DLK-261201-00012")
        await page.select_option("select[name=payment]", label="Không thu trực tuyến")
        await page.click("button:has-text('Lọc')")
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_contain_text("DLK-261123-00007")
        await page.screenshot(path=str(ARTIFACTS / "dossiers-payment.png"), full_page=True)
        await page.goto(f"{site['url']}/dashboard")
        await expect(page.locator("#payment-overall")).to_contain_text("50.0 %")
        await expect(page.locator("#payment-province")).to_contain_text("mục tiêu ≥ 50.0 %")
        await expect(page.locator("#payment-province")).to_contain_text("1 / 2")
        await browser.close()
