""" "Who has used my data?": the citizen's data uses from the audit log (both engines), the chat
action with a real Tracker (no Rasa), and the supervisor's CSV export over HTTP."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from actions.data_access import ActionShowDataAccess
from bot.catalogue.model import Catalogue
from bot.core.clock import utcnow
from bot.core.db import unit_of_work
from bot.core.models import AuditEntry, Citizen, Dossier, Officer
from bot.dossiers.drafts import start_draft
from bot.dossiers.gateway import EmbeddedGateway
from bot.dossiers.submission import submit_draft
from bot.governance import audit
from bot.governance.data_access import (
    CSV_HEADER,
    NONE_YET,
    DataUse,
    csv_rows,
    data_uses,
    data_uses_text,
)
from bot.identity.linking import bind
from console.web import Deps
from tests import factories
from tests.console_support import csrf_of, login

AN, CUC = "066190001234", "066190005678"
TAM_TRU_AGENCY = "Công an cấp xã nơi đang đăng ký tạm trú"


def people(s: Session) -> tuple[Citizen, Citizen]:
    an = factories.citizen(s, cccd=AN, phone="0905123456")
    cuc = factories.citizen(s, cccd=CUC, phone="0912345678", full_name="Lê Thị Cúc", sex="F")
    for person in (an, cuc):
        factories.record(
            s,
            person,
            "tam_tru",
            issued_on=dt.date(2024, 12, 1),
            valid_until=dt.date(2026, 12, 20),
            attributes={"dia_chi_tam_tru": "45 Phan Bội Châu"},
        )
    for name, role in (("canbo", "officer"), ("giamsat", "supervisor")):
        s.add(Officer(username=name, password_hash="x", role=role))
    s.flush()
    return an, cuc


def submit(s: Session, catalogue: Catalogue, person: Citizen, sender: str, code: str) -> Dossier:
    bind(s, "rest", sender, person, "otp")
    draft = start_draft(s, catalogue, person, code, "rest", sender)
    return submit_draft(s, catalogue, draft, EmbeddedGateway(), shown="").dossier


def reveal(s: Session, officer: str, kind: str, target: str, reason: str) -> AuditEntry:
    """An officer's reveal as the console writes it (`console.auth.grant_reveal`)."""
    entry = audit.record(
        s, officer, f"{kind}.reveal", target_type=kind, target_id=target, detail={"reason": reason}
    )
    s.flush()
    return entry


def test_prefill_submission_and_reveals_newest_first_by_role_without_names(
    engine: Engine, catalogue: Catalogue
) -> None:
    with unit_of_work(engine) as s:
        an, _ = people(s)
        dossier = submit(s, catalogue, an, "u1", "tam_tru_gia_han")
        reveal(s, "canbo", "dossier", dossier.code, "Đối chiếu hồ sơ, gọi 0905123456")
        reveal(s, "giamsat", "conversation", "u1", "Công dân khiếu nại")
        code, an_id = dossier.code, an.id
    with unit_of_work(engine) as s:
        uses = data_uses(s, an_id, 50)
    assert [u.kind for u in uses] == ["viewed", "viewed", "sent", "prefill"]
    talk, seen, sent, prefill = uses
    assert (talk.role, talk.reason) == ("lãnh đạo/giám sát", "Công dân khiếu nại")
    assert "trò chuyện" in talk.data
    assert (seen.role, seen.reason, seen.data) == (
        "cán bộ",
        "Đối chiếu hồ sơ, gọi 09******56",
        f"Hồ sơ {code}",
    )
    assert sent.data == f"Hồ sơ {code} ({catalogue.service('tam_tru_gia_han').name})"
    assert sent.purpose == f"gửi tới {TAM_TRU_AGENCY}" and sent.role is None
    assert prefill.data == "Dữ liệu dân cư, Đăng ký tạm trú" and "điền sẵn" in prefill.purpose
    assert uses == sorted(uses, key=lambda u: u.at, reverse=True)
    text = data_uses_text(uses)
    rows = "\n".join(",".join(r) for r in csv_rows(uses))
    for shown in (text, rows):
        assert "canbo" not in shown and "giamsat" not in shown  # roles, never user names
        assert "0905123456" not in shown and AN not in shown
        assert "lãnh đạo/giám sát" in shown and "Công dân khiếu nại" in shown
        assert code in shown and TAM_TRU_AGENCY in shown
    assert text.index("Công dân khiếu nại") < text.index("Đăng ký tạm trú")  # newest first
    assert len(CSV_HEADER) == len(csv_rows(uses)[0])


def test_prepared_and_joined_dossiers_name_their_agency(
    engine: Engine, catalogue: Catalogue
) -> None:
    with unit_of_work(engine) as s:
        an, _ = people(s)
        factories.record(
            s,
            an,
            "birth_notice",
            event_date=dt.date.today(),
            attributes={"ten_tre": "Nguyễn Văn Bé", "gioi_tinh_tre": "M", "noi_sinh": "BV"},
        )
        submit(s, catalogue, an, "u1", "khai_sinh")
        submit(s, catalogue, an, "u1", "ly_lich_tu_phap")
        an_id = an.id
    with unit_of_work(engine) as s:
        sent = [u for u in data_uses(s, an_id, 50) if u.kind == "sent"]
    purposes = [u.purpose for u in sent]
    agencies = {s.code: s.agency for s in catalogue.services}
    assert purposes[0] == f"chuẩn bị để Ông/Bà nộp tại {agencies['ly_lich_tu_phap']}"
    assert f"lập liên thông, gửi tới {agencies['thuong_tru_tre_em']}" in purposes
    assert f"gửi tới {agencies['khai_sinh']}" in purposes


def test_another_citizens_entries_never_appear(engine: Engine, catalogue: Catalogue) -> None:
    with unit_of_work(engine) as s:
        an, cuc = people(s)
        # "u9" was Cúc's conversation, revealed then; An links it later.
        theirs = submit(s, catalogue, cuc, "u9", "tam_tru_gia_han")
        early = reveal(s, "giamsat", "conversation", "u9", "Xem hội thoại của chị Cúc")
        early.created_at = utcnow() - dt.timedelta(hours=1)
        reveal(s, "canbo", "dossier", theirs.code, "Hồ sơ chị Cúc")
        reveal(s, "giamsat", "conversation", "anonymous-7", "Hội thoại chưa liên kết")
        bind(s, "rest", "u9", an, "phone")
        s.flush()
        mine = submit(s, catalogue, an, "u1", "tam_tru_gia_han")
        reveal(s, "canbo", "dossier", mine.code, "Hồ sơ anh An")
        an_id, cuc_id, their_code = an.id, cuc.id, theirs.code
    with unit_of_work(engine) as s:
        an_uses, cuc_uses = data_uses(s, an_id, 50), data_uses(s, cuc_id, 50)
    an_text, cuc_text = data_uses_text(an_uses), data_uses_text(cuc_uses)
    assert their_code not in an_text and "chị Cúc" not in an_text
    assert "chưa liên kết" not in an_text + cuc_text
    assert [u.kind for u in an_uses] == ["viewed", "sent", "prefill"]
    assert "anh An" not in cuc_text and [u.kind for u in cuc_uses] == ["viewed", "sent", "prefill"]
    with unit_of_work(engine) as s:
        assert len(data_uses(s, an_id, 2)) == 2  # the limit keeps the newest


def test_nothing_yet_and_more_than_shown(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        an, _ = people(s)
        assert data_uses(s, an.id) == []
    assert data_uses_text([]).startswith(NONE_YET)
    one = DataUse(dt.datetime(2026, 12, 1, 3, 5), "prefill", "Dữ liệu dân cư", "dùng để điền")
    text = data_uses_text([one], more=True)
    assert "01/12/2026 10:05" in text  # local time
    assert "1 lần gần nhất" in text and "bộ phận một cửa" in text


# The chat action, with a real Tracker and the actions' own database (no Rasa server).


def tracker(text: str, intent: str, entities: list[dict[str, Any]] | None = None) -> Tracker:
    message = {"text": text, "intent": {"name": intent}, "entities": entities or []}
    events = [{"event": "user", "text": text, "input_channel": "rest", "parse_data": message}]
    return Tracker("u1", {}, message, events, False, None, None, "action_listen")


def said(t: Tracker) -> tuple[str, list[dict[str, Any]]]:
    dispatcher = CollectingDispatcher()
    events = ActionShowDataAccess().run(dispatcher, t, {})
    if asyncio.iscoroutine(events):
        events = asyncio.run(events)
    return "\n".join(m.get("text") or "" for m in dispatcher.messages), events


def test_a_linked_citizen_sees_their_uses(actions_db: Path, catalogue: Catalogue) -> None:
    with unit_of_work() as s:
        an, _ = people(s)
        dossier = submit(s, catalogue, an, "u1", "tam_tru_gia_han")
        reveal(s, "giamsat", "dossier", dossier.code, "Công dân đề nghị kiểm tra")
        code = dossier.code
    text, events = said(tracker("ai đã xem thông tin của tôi", "show_data_access"))
    assert events == []
    assert text.startswith("Dữ liệu của Ông/Bà đã được sử dụng")
    assert code in text and TAM_TRU_AGENCY in text and "Đăng ký tạm trú" in text
    assert "lãnh đạo/giám sát" in text and "Công dân đề nghị kiểm tra" in text
    assert "giamsat" not in text


def test_an_unlinked_sender_learns_nothing(actions_db: Path, catalogue: Catalogue) -> None:
    with unit_of_work() as s:
        an, _ = people(s)
        dossier = submit(s, catalogue, an, "someone-else", "tam_tru_gia_han")
        code = dossier.code
    for t in (
        tracker("ai đã xem thông tin của tôi", "show_data_access"),
        tracker(
            f'/show_data_access{{"cccd": "{AN}"}}',
            "show_data_access",
            [{"entity": "cccd", "value": AN}],
        ),
        tracker(
            f'/show_data_access{{"dossier_code": "{code}"}}',
            "show_data_access",
            [{"entity": "dossier_code", "value": code}],
        ),
    ):
        text, events = said(t)
        assert "xác thực danh tính" in text and events == []
        assert code not in text and "Đăng ký tạm trú" not in text and "Nguyễn" not in text


# The console: a supervisor exports one citizen's list, with a reason; audited.


async def test_a_supervisor_exports_one_citizens_list_with_a_reason(
    console: tuple[TestClient, Deps], catalogue: Catalogue
) -> None:
    client, deps = console
    with unit_of_work(deps.engine) as s:
        an = factories.citizen(s, cccd=AN, phone="0905123456")
        factories.record(
            s, an, "tam_tru", valid_until=dt.date(2026, 12, 20), attributes={"dia_chi_tam_tru": "x"}
        )
        cuc = factories.citizen(s, cccd=CUC, phone="0912345678", full_name="Lê Thị Cúc")
        mine = submit(s, catalogue, an, "an-1", "tam_tru_gia_han")
        theirs = submit(s, catalogue, cuc, "cuc-1", "tam_tru_gia_han")
        ids = {"mine": mine.id, "theirs": theirs.id}
        codes = {"mine": mine.code, "theirs": theirs.code}
    assert (await client.get("/data-access", allow_redirects=False)).status == 303  # sign in
    answer = await client.post("/data-access/export.csv", data={"csrf_token": "x"})
    assert answer.status == 401

    token = await login(client, "canbo")
    assert "/data-access" not in await (await client.get("/conversations")).text()
    assert (await client.get("/data-access")).status == 403
    form = {"csrf_token": token, "cccd": AN, "reason": "Công dân đề nghị tại một cửa"}
    refused = await client.post("/data-access/export.csv", data=form)
    assert refused.status == 403 and AN not in await refused.text()
    # An officer may reveal a dossier to process it: that shows in the citizen's list.
    await client.post(
        f"/dossiers/{ids['mine']}/reveal", data={"csrf_token": token, "reason": "Xử lý hồ sơ"}
    )
    await client.post("/logout", data={"csrf_token": token})

    token = await login(client, "giamsat")
    form["csrf_token"] = token
    page = await (await client.get("/data-access")).text()
    assert 'href="/data-access"' in page and csrf_of(page) == token
    short = await client.post("/data-access/export.csv", data={**form, "reason": "x"})
    assert "Cần ghi lý do" in await short.text()
    bad = await client.post("/data-access/export.csv", data={**form, "cccd": "12345"})
    assert "Số định danh không hợp lệ" in await bad.text()
    unknown = await client.post("/data-access/export.csv", data={**form, "cccd": "066190009999"})
    assert "Không tìm thấy công dân" in await unknown.text()

    answer = await client.post("/data-access/export.csv", data=form)
    assert answer.status == 200 and answer.content_type == "text/csv"
    assert "du-lieu-da-su-dung" in answer.headers["Content-Disposition"]
    body = (await answer.read()).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0] == list(CSV_HEADER)
    assert [r[1] for r in rows[1:]] == ["Cán bộ xem dữ liệu", "Gửi hồ sơ", "Điền sẵn hồ sơ"]
    assert rows[1][4:] == ["cán bộ", "Xử lý hồ sơ"]
    assert codes["mine"] in body and codes["theirs"] not in body
    assert "canbo" not in body and "giamsat" not in body and AN not in body

    with unit_of_work(deps.engine) as s:
        entries = s.scalars(select(AuditEntry).where(AuditEntry.action == "data_uses.export")).all()
        an_id = s.scalar(select(Citizen.id).where(Citizen.cccd == AN))
        uses = data_uses(s, an_id, 50)
    found = [e for e in entries if e.detail.get("found")]
    assert len(entries) == 2 and len(found) == 1  # the unknown number is kept, without it
    assert found[0].actor == "giamsat" and found[0].target_id == str(an_id)
    assert found[0].detail == {"reason": form["reason"], "rows": 3, "found": True}
    assert all(CUC not in str(e.detail) and AN not in str(e.detail) for e in entries)
    # The export itself is in the citizen's list from now on, by role.
    assert (uses[0].kind, uses[0].role, uses[0].reason) == (
        "viewed",
        "lãnh đạo/giám sát",
        form["reason"],
    )
