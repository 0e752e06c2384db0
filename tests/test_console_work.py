"""Officer console over HTTP: hand-offs, dossiers, learning loop, dashboard, exports, roles."""

from __future__ import annotations

import csv
import datetime as dt
import io

from sqlalchemy import select

from bot.core.clock import utcnow
from bot.core.db import unit_of_work
from bot.core.models import (
    AuditEntry,
    ChannelBinding,
    Consent,
    ConversationSummary,
    Dossier,
    DossierStatusChange,
    Handoff,
    MessageFlag,
    SatisfactionRating,
)
from console.indexer import sync_all
from console.web import Deps
from tests import factories
from tests.console_support import (
    Conversation,
    FakeRasa,
    FakeReplies,
    login,
)


def seed_handoff(deps: Deps) -> int:
    talk = Conversation(deps.tracker, "telegram:4242", "telegram")
    talk.user("cho tôi gặp cán bộ, số tôi 0905123456", "request_human")
    talk.pause()
    with unit_of_work(deps.engine) as session:
        handoff = Handoff(
            sender_id="telegram:4242",
            channel="telegram",
            status="open",
            reason="cho tôi gặp cán bộ, số tôi 0905123456",
            created_at=utcnow() - dt.timedelta(minutes=42),
        )
        session.add(handoff)
        session.flush()
        return handoff.id


def seed_dossier(deps: Deps, status: str = "received") -> int:
    with unit_of_work(deps.engine) as session:
        citizen = factories.citizen(session)
        dossier = Dossier(
            code="DLK-261123-00001",
            service_code="tam_tru_gia_han",
            citizen_id=citizen.id,
            status=status,
            fields={
                "values": {
                    "ho_ten": "Nguyễn Văn An",
                    "so_dinh_danh": "066190001234",
                    "so_dien_thoai": "0905123456",
                },
                "typed": ["so_dien_thoai"],
            },
            channel="zalo",
            submitted_at=utcnow() - dt.timedelta(hours=3),
            expected_on=dt.date(2026, 11, 26),
        )
        session.add(dossier)
        session.flush()
        session.add(DossierStatusChange(dossier_id=dossier.id, status=status, changed_by="citizen"))
        session.add(
            Consent(
                citizen_id=citizen.id,
                service_code="tam_tru_gia_han",
                dossier_id=dossier.id,
                shown={"summary": "Họ tên: Nguyễn Văn An, số định danh 066190001234"},
                channel="zalo",
            )
        )
        return dossier.id


async def test_handoff_queue_take_reply_close(console) -> None:  # type: ignore[no-untyped-def]
    client, deps = console
    handoff_id = seed_handoff(deps)
    token = await login(client, "canbo")
    queue = await (await client.get("/handoffs")).text()
    assert "42 phút" in queue and "09******56" in queue and "0905123456" not in queue
    page = await client.post(f"/handoffs/{handoff_id}/take", data={"csrf_token": token})
    html = await page.text()
    assert "Cán bộ canbo đang xử lý" in html and "reply_key" in html
    key = html.split('name="reply_key" value="')[1].split('"')[0]
    form = {"csrf_token": token, "text": "Chào Ông/Bà, tôi là cán bộ.", "reply_key": key}
    page = await client.post(f"/handoffs/{handoff_id}/reply", data=form)
    assert "Đã gửi trả lời" in await page.text()
    await client.post(f"/handoffs/{handoff_id}/reply", data=form)  # double submit
    assert deps.replies.sent == [
        ("telegram", "telegram:4242", "Chào Ông/Bà, tôi là cán bộ.", f"handoff-reply:{key}")
    ]
    assert deps.rasa.appended == [("telegram:4242", "Chào Ông/Bà, tôi là cán bộ.", "canbo")]
    page = await client.post(f"/handoffs/{handoff_id}/close", data={"csrf_token": token})
    assert "trợ lý ảo tiếp tục" in await page.text()
    assert deps.rasa.resumed == ["telegram:4242"]
    with unit_of_work(deps.engine) as session:
        handoff = session.get(Handoff, handoff_id)
        assert handoff.status == "closed" and handoff.officer == "canbo"
        actions = set(session.scalars(select(AuditEntry.action)))
    assert {"handoff.take", "handoff.reply", "handoff.close"} <= actions


async def test_handoff_rules(console) -> None:  # type: ignore[no-untyped-def]
    client, deps = console
    handoff_id = seed_handoff(deps)
    token = await login(client, "canbo")
    form = {"csrf_token": token, "text": "xin chào", "reply_key": "k1"}
    page = await client.post(f"/handoffs/{handoff_id}/reply", data=form)
    assert "nhận yêu cầu này trước" in await page.text()  # reply needs the request taken
    await client.post(f"/handoffs/{handoff_id}/take", data={"csrf_token": token})
    deps.replies.fail = True
    page = await client.post(f"/handoffs/{handoff_id}/reply", data=form)
    assert "từ chối tin nhắn" in await page.text()
    deps.rasa.fail = True
    page = await client.post(f"/handoffs/{handoff_id}/close", data={"csrf_token": token})
    assert "chưa được đóng" in await page.text()
    with unit_of_work(deps.engine) as session:
        assert session.get(Handoff, handoff_id).status == "taken"  # Rasa still paused
    await client.post("/logout", data={"csrf_token": token})
    await login(client, "giamsat")  # someone else's request: cannot take it
    other = await (await client.get(f"/handoffs/{handoff_id}")).text()
    assert "Gửi" not in other.split("Trả lời đã gửi")[0].split("</dl>")[1]


async def test_dossier_queue_detail_and_status_changes(console) -> None:  # type: ignore[no-untyped-def]
    client, deps = console
    dossier_id = seed_dossier(deps)
    token = await login(client, "canbo")
    queue = await (await client.get("/dossiers?service=tam_tru_gia_han")).text()
    assert "DLK-261123-00001" in queue and "N. V. A***" in queue
    assert "DLK-261123-00001" not in await (await client.get("/dossiers?status=completed")).text()
    assert (
        "DLK-261123-00001"
        not in await (await client.get("/dossiers?from=2001-01-01&to=2001-01-02")).text()
    )
    detail = await (await client.get(f"/dossiers/{dossier_id}")).text()
    assert "066*******34" in detail and "066190001234" not in detail
    assert "Nguyễn Văn An" not in detail and "0905123456" not in detail
    assert "<td>09******56</td><td>Công dân nhập</td>" in detail
    url = f"/dossiers/{dossier_id}/status"
    page = await client.post(url, data={"csrf_token": token, "status": "completed", "note": ""})
    assert "Không thể chuyển" in await page.text()  # received → completed skips processing
    page = await client.post(url, data={"csrf_token": token, "status": "needs_info", "note": ""})
    assert "Cần ghi rõ" in await page.text()
    for status, note in (("processing", ""), ("completed", "Mời nhận kết quả tại Bộ phận một cửa")):
        page = await client.post(url, data={"csrf_token": token, "status": status, "note": note})
        assert "Đã cập nhật" in await page.text()
    with unit_of_work(deps.engine) as session:
        dossier = session.get(Dossier, dossier_id)
        last = dossier.history[-1]
    assert dossier.status == "completed"
    assert (last.status, last.changed_by, last.note) == (
        "completed",
        "canbo",
        "Mời nhận kết quả tại Bộ phận một cửa",
    )
    reveal = await client.post(
        f"/dossiers/{dossier_id}/reveal", data={"csrf_token": token, "reason": "xử lý hồ sơ"}
    )
    assert "066190001234" in await reveal.text()


async def test_flag_label_comment_and_nlu_export(console) -> None:  # type: ignore[no-untyped-def]
    client, deps = console
    talk = Conversation(deps.tracker, "zalo:9001", "zalo")
    event_id = talk.user("ho so [cua] toi sao roi 0905123456", "nlu_fallback", 0.3)
    sync_all(deps.engine, deps.tracker)
    with unit_of_work(deps.engine) as session:
        conversation = session.scalar(select(ConversationSummary.id))
    url = f"/conversations/{conversation}"
    token = await login(client, "canbo")
    bad = await client.post(
        f"{url}/flags", data={"csrf_token": token, "event_id": str(event_id), "intent": "nope"}
    )
    assert "không có trong danh sách" in await bad.text()
    await client.post(
        f"{url}/flags",
        data={"csrf_token": token, "event_id": str(event_id), "intent": "check_status"},
    )
    await client.post(f"{url}/labels", data={"csrf_token": token, "label": "keep"})
    await client.post(f"{url}/comments", data={"csrf_token": token, "text": "<i>cần xem lại</i>"})
    html = await (await client.get(url)).text()
    assert "đã đánh dấu: check_status" in html and "Giữ lại" in html
    assert "&lt;i&gt;cần xem lại&lt;/i&gt;" in html
    flags = await (await client.get("/flags")).text()
    assert "09******56" in flags
    denied = await client.post("/flags/export", data={"csrf_token": token})
    assert denied.status == 403
    await client.post("/logout", data={"csrf_token": token})
    token = await login(client, "giamsat")
    answer = await client.post("/flags/export", data={"csrf_token": token})
    assert answer.status == 200 and "attachment" in answer.headers["Content-Disposition"]
    text = await answer.text()
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader

    data = RasaYAMLReader().reads(text)
    assert [(m.get("intent"), m.get("text")) for m in data.intent_examples] == [
        ("check_status", "ho so (cua) toi sao roi 09******56")
    ]
    with unit_of_work(deps.engine) as session:
        assert session.scalar(select(MessageFlag.exported_at)) is not None


async def test_dashboard_shows_the_indicators(console) -> None:  # type: ignore[no-untyped-def]
    client, deps = console
    seed_dossier(deps)
    with unit_of_work(deps.engine) as session:
        for rating in (5, 5, 4, 2):
            session.add(SatisfactionRating(rating=rating, service_code="tam_tru_gia_han"))
    talk = Conversation(deps.tracker, "zalo:1", "zalo")
    talk.user("alo", "greet")
    talk.user("???", "nlu_fallback", 0.2)
    sync_all(deps.engine, deps.tracker)
    await login(client, "canbo")
    html = await (await client.get("/dashboard")).text()
    assert "75.0 %" in html  # 3 of 4 ratings are 4–5
    assert "50.0 %" in html  # 1 of 2 citizen messages fell back
    assert "<svg" in html and "Gia hạn tạm trú" in html


async def test_exports_are_masked_and_for_supervisors(console) -> None:  # type: ignore[no-untyped-def]
    client, deps = console
    seed_dossier(deps)
    talk = Conversation(deps.tracker, "sms:0905123456", "sms")
    talk.user('=HYPERLINK("x")', "greet")
    with unit_of_work(deps.engine) as session:
        session.add(SatisfactionRating(rating=1, comment="=cmd gọi 0905123456", channel="sms"))
        session.add(ChannelBinding(channel="sms", channel_user_id="sms:0905123456", citizen_id=1))
    sync_all(deps.engine, deps.tracker)
    token = await login(client, "canbo")
    assert (await client.get("/exports/dossiers.csv")).status == 403
    await client.post("/logout", data={"csrf_token": token})
    await login(client, "giamsat")
    for path in (
        "/exports/conversations.csv",
        "/exports/dossiers.csv?status=all",
        "/exports/ratings.csv",
    ):
        answer = await client.get(path)
        assert answer.status == 200 and answer.content_type == "text/csv"
        body = (await answer.read()).decode("utf-8-sig")
        rows = list(csv.reader(io.StringIO(body)))
        assert len(rows) == 2, path
        assert (
            "0905123456" not in body and "066190001234" not in body and "Nguyễn Văn An" not in body
        )
        assert not any(c.startswith("=") for c in rows[1]), rows[1]
    with unit_of_work(deps.engine) as session:
        exported = set(
            session.scalars(select(AuditEntry.action).where(AuditEntry.action.like("export.%")))
        )
    assert exported == {"export.conversations", "export.dossiers", "export.ratings"}


async def test_audit_log_is_for_admins(console) -> None:  # type: ignore[no-untyped-def]
    client, _ = console
    token = await login(client, "giamsat")
    assert (await client.get("/audit")).status == 403
    await client.post("/logout", data={"csrf_token": token})
    await login(client, "quantri")
    html = await (await client.get("/audit")).text()
    assert "console.login" in html


async def test_fakes_are_used(console) -> None:  # type: ignore[no-untyped-def]
    _, deps = console
    assert isinstance(deps.rasa, FakeRasa) and isinstance(deps.replies, FakeReplies)
