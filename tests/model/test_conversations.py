"""Conversations through the REST channel of a running Rasa server with the action server.

Covers the actions issue's acceptance: linking, level-3 submission, level-2 draft with a
missing field and a correction, own and foreign status, double confirmation, postpone and
stop, rating, hand-off, erasure, the security of anonymous senders, and time to submit.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.core.db import unit_of_work
from bot.core.models import (
    ChannelBinding,
    Citizen,
    Dossier,
    Handoff,
    LinkChallenge,
    Reminder,
    ReminderPreference,
    SatisfactionRating,
)
from bot.identity.speaker import rest_sender
from tests import factories
from tests.model.server import Servers, seeded_servers

pytestmark = [pytest.mark.model, pytest.mark.filterwarnings("ignore")]
AN, CUC, HOA = "066190001234", "066190005678", "066190007777"
BINH, DUNG, EM = "066090001111", "066190002222", "066190003333"


def seed(s: Session) -> None:
    for cccd, phone, name in [
        (AN, "0905123456", "Nguyễn Văn An"),
        (BINH, "0905111111", "Nguyễn Văn Bình"),
        (DUNG, "0905222222", "Nguyễn Văn Dũng"),
        (EM, "0905333333", "Nguyễn Văn Em"),
    ]:
        person = factories.citizen(s, cccd=cccd, phone=phone, full_name=name)
        factories.record(
            s,
            person,
            "tam_tru",
            issued_on=dt.date(2024, 12, 1),
            valid_until=dt.date.today() + dt.timedelta(days=25),
            attributes={"dia_chi_tam_tru": "45 Phan Bội Châu, Buôn Ma Thuột"},
        )
    factories.citizen(s, cccd=CUC, phone="0912345678", full_name="Lê Thị Cúc", sex="F")
    factories.citizen(s, cccd=HOA, phone="0987654321", full_name="Trần Thị Hoa", sex="F")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Servers]:
    yield from seeded_servers(tmp_path_factory.mktemp("conversations"), sqlite_template, seed)


def link(servers: Servers, sender: str, cccd: str, phone: str) -> None:
    assert "mã xác thực" in servers.say(sender, cccd)
    assert "Xác thực thành công" in servers.say(sender, servers.last_code(phone))


def tracker_events(servers: Servers, sender: str) -> int:
    """Events of the REST conversation `sender` (stored as `rest:<sender>`)."""
    with sqlite3.connect(servers.workdir / "tracker.db") as conn:
        return conn.execute(
            "SELECT count(*) FROM events WHERE sender_id = ?", (rest_sender(sender),)
        ).fetchone()[0]


def count(servers: Servers, model, **where) -> int:  # type: ignore[no-untyped-def]
    with unit_of_work(servers.engine) as s:
        query = select(func.count()).select_from(model)
        for key, value in where.items():
            query = query.where(getattr(model, key) == value)
        return s.scalar(query)


def test_linking_right_wrong_expired_and_unknown(servers: Servers) -> None:
    ask = servers.say("link-1", "tôi muốn xác thực tài khoản")
    assert "số định danh" in ask
    sent = servers.say("link-1", AN)
    assert "09******56" in sent
    unknown = servers.say("link-2", "066190009999")
    assert unknown.replace("09******56", "X").split("tới số")[0] == sent.split("tới số")[0]
    for _ in range(4):
        assert "không đúng" in servers.say("link-1", "mã là 000001")
    assert "tạm khóa" in servers.say("link-1", "mã là 000001")
    assert count(servers, ChannelBinding, channel_user_id=rest_sender("link-1")) == 0
    servers.say("link-3", AN)
    with unit_of_work(servers.engine) as s:
        s.execute(
            update(LinkChallenge)
            .where(LinkChallenge.channel_user_id == rest_sender("link-3"))
            .values(expires_at=dt.datetime(2000, 1, 1))
        )
    assert "hết hạn" in servers.say("link-3", servers.last_code("0905123456"))
    link(servers, "link-4", AN, "0905123456")
    assert "đã xác thực" in servers.say("link-4", "tôi muốn xác thực tài khoản")


def test_anonymous_sender_and_crafted_payloads_get_no_personal_data(servers: Servers) -> None:
    for text in [
        "hồ sơ của tôi đến đâu rồi",
        "tôi có giấy tờ nào sắp hết hạn không",
        '/check_status{"cccd": "066190003333"}',
        '/list_due{"cccd": "066190003333"}',
        '/inform{"dossier_code": "DLK-261120-00001"}',
    ]:
        reply = servers.say("anon-1", text)
        assert "Nguyễn" not in reply and "Phan Bội Châu" not in reply and "***" not in reply
    reply = servers.say("anon-1", '/inform{"cccd": "066190003333"}')
    assert "09******33" in reply and "Nguyễn" not in reply  # only a code to the registry phone
    assert "xác thực danh tính" in servers.say("anon-1", "hồ sơ của tôi đến đâu rồi")


def test_a_rest_client_cannot_borrow_a_zalo_conversation_id(servers: Servers) -> None:
    from bot.identity.linking import bind

    with unit_of_work(servers.engine) as s:
        bind(s, "zalo", "zalo:4242", s.scalar(select(Citizen).where(Citizen.cccd == EM)), "otp")
    reply = servers.say("zalo:4242", "tôi có giấy tờ nào sắp hết hạn không")
    assert "xác thực danh tính" in reply and "tạm trú" not in reply


def test_level3_submission_status_and_double_confirmation(servers: Servers) -> None:
    link(servers, "an-1", BINH, "0905111111")
    summary = servers.say("an-1", "tôi muốn gia hạn tạm trú")
    assert "Phan Bội Châu" in summary and "đồng ý nộp" in summary and "066*******11" in summary
    done = servers.say("an-1", "đồng ý nộp")
    assert "Mã hồ sơ: DLK-" in done and "Lệ phí: 15.000 đồng" in done
    code = done.split("Mã hồ sơ: ")[1].split(".")[0]
    assert "đã được nộp trước đó" in servers.say("an-1", "đồng ý")
    assert count(servers, Dossier, service_code="tam_tru_gia_han") == 1
    assert code in servers.say("an-1", "hồ sơ của tôi đến đâu rồi")
    assert "Đã tiếp nhận" in servers.say("an-1", f"hồ sơ {code} đến đâu rồi")
    link(servers, "cuc-1", CUC, "0912345678")
    foreign = servers.say("cuc-1", f"hồ sơ {code} đến đâu rồi")
    wrong = servers.say("cuc-1", "hồ sơ DLK-200101-00999 đến đâu rồi")
    assert foreign.replace(code, "X") == wrong.replace("DLK-200101-00999", "X")


def test_level2_draft_with_a_missing_field_and_a_correction(servers: Servers) -> None:
    link(servers, "cuc-2", CUC, "0912345678")
    first = servers.say("cuc-2", "tôi muốn làm lý lịch tư pháp")
    assert "Còn 3 thông tin" in first and "Phiếu số 1" in first
    servers.say("cuc-2", "1")
    servers.say("cuc-2", "bổ sung hồ sơ xin việc")
    assert "số nguyên" in servers.say("cuc-2", "vài bản")
    review = servers.say("cuc-2", "2")
    assert "bổ sung hồ sơ xin việc" in review and "xác nhận" in review
    assert "mới" in servers.say("cuc-2", "sửa mục đích")
    review = servers.say("cuc-2", "đi du học")
    assert "đi du học" in review
    saved = servers.say("cuc-2", "1")
    assert "mã hồ sơ DLK-" in saved and "Xin mang theo" in saved and "lịch hẹn" in saved
    booked = servers.say("cuc-2", "1")
    assert "Đã đặt lịch hẹn" in booked
    with unit_of_work(servers.engine) as s:
        dossier = s.scalar(select(Dossier).where(Dossier.service_code == "ly_lich_tu_phap"))
        assert dossier.status == "prepared" and dossier.fields["values"]["muc_dich"] == "đi du học"
        assert "appointment" in dossier.fields


def test_rating_postpone_stop_handoff_and_erasure(servers: Servers) -> None:
    link(servers, "hoa-1", HOA, "0987654321")
    servers.say("hoa-1", "rất hài lòng")
    servers.say("hoa-1", "không")
    assert count(servers, SatisfactionRating, rating=5) >= 1
    assert "nhắc lại" in servers.say("hoa-1", "nhắc lại sau 7 ngày")
    assert "không gửi nhắc" in servers.say("hoa-1", "STOP")
    with unit_of_work(servers.engine) as s:
        everything = s.scalar(
            select(ReminderPreference).where(ReminderPreference.service_code == "*")
        )
        assert everything.stopped and everything.postponed_until > dt.date.today()
    reply = servers.say("hoa-1", "xóa dữ liệu của tôi")
    assert "chắc" in reply
    assert "Đã xóa" in servers.say("hoa-1", "1")
    assert count(servers, ChannelBinding, channel_user_id=rest_sender("hoa-1")) == 0
    time.sleep(1.5)
    assert tracker_events(servers, "hoa-1") == 0
    assert "xác thực danh tính" in servers.say("hoa-1", "hồ sơ của tôi đến đâu rồi")
    handed = servers.say("hoa-2", "cho tôi gặp cán bộ")
    assert "cán bộ" in handed and count(servers, Handoff, sender_id=rest_sender("hoa-2")) == 1
    assert servers.say("hoa-2", "alo có ai không") == ""  # the bot stays quiet for the officer


def test_reminder_reply_reaches_a_submitted_dossier_in_two_messages(servers: Servers) -> None:
    link(servers, "an-2", DUNG, "0905222222")
    reminder_id, shown = servers.remind("an-2", DUNG, "tam_tru_gia_han")
    assert "tạm trú" in shown
    citizen_messages = ["đồng ý", "đồng ý nộp"]
    summary = servers.say("an-2", citizen_messages[0])
    assert "đồng ý nộp" in summary
    done = servers.say("an-2", citizen_messages[1])
    assert "Mã hồ sơ: DLK-" in done and len(citizen_messages) <= 3
    with unit_of_work(servers.engine) as s:
        assert s.get(Reminder, reminder_id).state == "converted"
