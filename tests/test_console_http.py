"""Officer console over HTTP: sign-in, sessions, CSRF, headers, conversations and masking."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from bot.core.db import unit_of_work
from bot.core.models import AuditEntry, ChannelBinding, ConsoleSession, ConversationSummary
from console.indexer import sync_all
from console.web import Deps
from tests import factories
from tests.console_support import (
    PASSWORD,
    Conversation,
    csrf_of,
    login,
)

PAGES = [
    "/conversations",
    "/conversations/1",
    "/handoffs",
    "/handoffs/1",
    "/dossiers",
    "/dossiers/1",
    "/flags",
    "/dashboard",
    "/exports",
    "/exports/conversations.csv",
    "/exports/dossiers.csv",
    "/exports/ratings.csv",
    "/audit",
    "/payments/mismatches",
]
FORMS = [
    "/logout",
    "/conversations/1/reveal",
    "/conversations/1/labels",
    "/conversations/1/labels/delete",
    "/conversations/1/comments",
    "/conversations/1/flags",
    "/flags/export",
    "/handoffs/1/take",
    "/handoffs/1/reply",
    "/handoffs/1/close",
    "/dossiers/1/status",
    "/dossiers/1/reveal",
    "/payments/mismatches/1/resolve",
]


def seed_conversations(deps: Deps) -> dict[str, int]:
    """A linked Zalo conversation with personal data and a low-confidence turn, an anonymous
    Telegram one, and one whose citizen typed markup."""
    with unit_of_work(deps.engine) as session:
        citizen = factories.citizen(session, cccd="066190001234", phone="0905123456")
        session.add(
            ChannelBinding(channel="zalo", channel_user_id="zalo:777001", citizen_id=citizen.id)
        )
    linked = Conversation(deps.tracker, "zalo:777001", "zalo")
    linked.session()
    linked.user("xin chào", "greet")
    linked.bot("Xin chào Ông/Bà Nguyễn Văn An!")
    linked.user("số của tôi 066190001234, gọi 0905123456", "inform", 0.91, cccd="066190001234")
    linked.user("gia hạn cái giấy kia", "nlu_fallback", 0.31)
    linked.slot("service", "tam_tru_gia_han")
    anonymous = Conversation(deps.tracker, "telegram:555", "telegram")
    anonymous.user("làm hộ chiếu hết bao nhiêu tiền", "ask_fee", 0.97, service="ho_chieu_cap_lai")
    anonymous.bot("Lệ phí 200.000 đồng.")
    hostile = Conversation(deps.tracker, "sms:0912000111", "sms")
    hostile.user("<script>alert(1)</script> <b>đậm</b>", "out_of_scope", 0.8)
    sync_all(deps.engine, deps.tracker)
    with unit_of_work(deps.engine) as session:
        return dict(
            session.execute(select(ConversationSummary.sender_id, ConversationSummary.id)).all()
        )


async def test_every_page_and_form_requires_a_session(console) -> None:  # type: ignore[no-untyped-def]
    client, _ = console
    for path in PAGES:
        answer = await client.get(path, allow_redirects=False)
        assert answer.status == 303, path
        assert answer.headers["Location"].startswith("/login?next=")
    for path in FORMS:
        answer = await client.post(path, data={"csrf_token": "x"}, allow_redirects=False)
        assert answer.status == 401, path
    assert (await client.get("/healthz")).status == 200


async def test_every_form_rejects_a_missing_or_wrong_csrf_token(console) -> None:  # type: ignore[no-untyped-def]
    client, _ = console
    await login(client, "quantri")
    for path in FORMS:
        for data in ({}, {"csrf_token": "forged"}):
            answer = await client.post(path, data=data, allow_redirects=False)
            assert answer.status == 403, path


async def test_a_form_posted_from_another_origin_is_rejected(console) -> None:  # type: ignore[no-untyped-def]
    client, _ = console
    token = await login(client, "canbo")
    answer = await client.post(
        "/logout",
        data={"csrf_token": token},
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
    )
    assert answer.status == 403


async def test_login_logout_and_security_headers(console) -> None:  # type: ignore[no-untyped-def]
    client, deps = console
    page = await client.get("/login")
    assert page.status == 200
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    form = {"username": "canbo", "password": PASSWORD, "csrf_token": csrf_of(await page.text())}
    answer = await client.post("/login", data=form, allow_redirects=False)
    set_cookie = answer.headers.getall("Set-Cookie")
    session_cookie = next(c for c in set_cookie if c.startswith("console_session="))
    assert "HttpOnly" in session_cookie and "SameSite=Strict" in session_cookie
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))["console_session"]
    token = csrf_of(await (await client.get("/conversations")).text())
    with unit_of_work(deps.engine) as session:
        stored = session.scalars(select(ConsoleSession.id)).all()
    assert stored and cookie.value not in stored  # only a keyed digest is kept
    answer = await client.get("/conversations")
    assert answer.headers["Cache-Control"] == "no-store"
    assert (await client.post("/logout", data={"csrf_token": token})).status == 200
    again = await client.get("/conversations", allow_redirects=False)
    assert again.status == 303


async def test_login_needs_its_csrf_token(console) -> None:  # type: ignore[no-untyped-def]
    client, _ = console
    await client.get("/login")
    answer = await client.post("/login", data={"username": "canbo", "password": PASSWORD})
    assert answer.status == 403


async def test_wrong_passwords_are_refused_then_throttled(console) -> None:  # type: ignore[no-untyped-def]
    client, deps = console
    page = await client.get("/login")
    token = csrf_of(await page.text())
    form = {"username": "canbo", "password": "sai-mat-khau-roi", "csrf_token": token}
    for _ in range(deps.settings.login_max_failures):
        answer = await client.post("/login", data=form)
        assert answer.status == 401
        assert "không đúng" in await answer.text()
    answer = await client.post("/login", data={**form, "password": PASSWORD})
    assert answer.status == 429  # even the right password waits out the window
    assert "quá nhiều lần" in await answer.text()


async def test_idle_sessions_expire(console) -> None:  # type: ignore[no-untyped-def]
    client, deps = console
    await login(client, "canbo")
    idle = dt.timedelta(minutes=deps.settings.session_idle_minutes + 1)
    with unit_of_work(deps.engine) as session:
        for row in session.scalars(select(ConsoleSession)):
            row.last_seen_at -= idle
    answer = await client.get("/conversations", allow_redirects=False)
    assert answer.status == 303


async def test_open_redirect_after_login_is_refused(console) -> None:  # type: ignore[no-untyped-def]
    client, _ = console
    page = await client.get("/login")
    token = csrf_of(await page.text())
    form = {"username": "canbo", "password": PASSWORD, "csrf_token": token}
    answer = await client.post(
        "/login", data={**form, "next": "//evil.example/x"}, allow_redirects=False
    )
    assert answer.headers["Location"] == "/"


async def test_list_is_masked_and_filters_low_confidence(console) -> None:  # type: ignore[no-untyped-def]
    client, deps = console
    ids = seed_conversations(deps)
    await login(client, "canbo")
    html = await (await client.get("/conversations")).text()
    assert "zalo:***001" in html and "zalo:777001" not in html
    assert "N. V. A***" in html and "Nguyễn Văn An" not in html
    assert "sms:09******11" in html
    low = await (await client.get("/conversations?low=1")).text()
    assert f"/conversations/{ids['zalo:777001']}" in low
    assert f"/conversations/{ids['telegram:555']}" not in low


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("channel=telegram", {"telegram:555"}),
        ("linked=linked", {"zalo:777001"}),
        ("linked=anonymous", {"telegram:555", "sms:0912000111"}),
        ("service=ho_chieu_cap_lai", {"telegram:555"}),
        ("service=tam_tru_gia_han", {"zalo:777001"}),
        ("intent=ask_fee", {"telegram:555"}),
        ("q=ho+chieu", {"telegram:555"}),
        ("q=gia+hạn+giấy", {"zalo:777001"}),
        ("q=066190001234", set()),  # ID numbers are not searchable
        ("from=2000-01-01&to=2000-01-02", set()),
    ],
)
async def test_list_filters(console, query: str, expected: set[str]) -> None:  # type: ignore[no-untyped-def]
    client, deps = console
    ids = seed_conversations(deps)
    await login(client, "canbo")
    html = await (await client.get(f"/conversations?{query}")).text()
    shown = {sender for sender, i in ids.items() if f'href="/conversations/{i}"' in html}
    assert shown == expected


async def test_list_pages_with_a_cursor(console) -> None:  # type: ignore[no-untyped-def]
    client, deps = console
    for i in range(7):
        Conversation(deps.tracker, f"telegram:{i}", "telegram", start=1_700_000_000 + i).user(
            "alo", "greet"
        )
    sync_all(deps.engine, deps.tracker)
    deps.settings.__dict__["page_size"] = 3  # frozen dataclass: tests only
    await login(client, "canbo")
    seen: list[str] = []
    url = "/conversations"
    while url:
        html = await (await client.get(url)).text()
        seen += [line for line in html.split('"') if line.startswith("/conversations/")]
        nxt = [p for p in html.split('href="')[1:] if p.startswith("/conversations?")]
        url = nxt[-1].split('"')[0].replace("&amp;", "&") if "Trang sau" in html else ""
    assert len(seen) == len(set(seen)) == 7


async def test_transcript_is_masked_and_markup_is_text(console) -> None:  # type: ignore[no-untyped-def]
    client, deps = console
    ids = seed_conversations(deps)
    await login(client, "canbo")
    html = await (await client.get(f"/conversations/{ids['zalo:777001']}")).text()
    assert "066*******34" in html and "066190001234" not in html
    assert "09******56" in html and "0905123456" not in html
    assert "N. V. A***" in html and "Nguyễn Văn An" not in html
    assert "nlu_fallback" in html and "0.31" in html and "tin cậy thấp" in html
    assert "service = tam_tru_gia_han" in html
    assert "Chỉ lãnh đạo/giám sát" in html  # an officer gets no reveal form
    hostile = await (await client.get(f"/conversations/{ids['sms:0912000111']}")).text()
    assert "<script>alert(1)</script>" not in hostile and "<b>đậm</b>" not in hostile
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in hostile
    listing = await (await client.get("/conversations")).text()
    assert "<script>alert" not in listing and "&lt;script&gt;" in listing


async def test_only_a_supervisor_reveals_with_a_reason_and_it_is_audited(console) -> None:  # type: ignore[no-untyped-def]
    client, deps = console
    ids = seed_conversations(deps)
    url = f"/conversations/{ids['zalo:777001']}"
    token = await login(client, "canbo")
    denied = await client.post(f"{url}/reveal", data={"csrf_token": token, "reason": "kiểm tra"})
    assert denied.status == 403
    await client.post("/logout", data={"csrf_token": token})
    token = await login(client, "giamsat")
    page = await client.post(f"{url}/reveal", data={"csrf_token": token, "reason": "x"})
    assert "Cần ghi lý do" in await page.text()
    assert "066190001234" not in await page.text()
    reason = "Công dân khiếu nại, cần đối chiếu"
    page = await client.post(f"{url}/reveal", data={"csrf_token": token, "reason": reason})
    html = await page.text()
    assert "066190001234" in html and "0905123456" in html and "Nguyễn Văn An" in html
    with unit_of_work(deps.engine) as session:
        entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "conversation.reveal"))
    assert entry is not None and entry.actor == "giamsat"
    assert entry.target_id == "zalo:777001" and entry.detail["reason"] == reason
    other = await (await client.get(f"/conversations/{ids['telegram:555']}")).text()
    assert "telegram:***" in other  # the reveal covers one conversation only


async def test_remaining_routes(console) -> None:  # type: ignore[no-untyped-def]
    client, deps = console
    ids = seed_conversations(deps)
    css = await client.get("/static/console.css")
    assert css.status == 200 and "Cache-Control" not in css.headers
    token = await login(client, "canbo")
    home = await client.get("/", allow_redirects=False)
    assert home.headers["Location"] == "/conversations"
    assert (await client.get("/conversations/999999")).status == 404
    assert (await client.get("/dossiers/999999")).status == 404
    assert (await client.get("/handoffs/999999")).status == 404
    exports = await (await client.get("/exports")).text()
    assert "Chỉ lãnh đạo/giám sát được xuất dữ liệu" in exports
    assert (await client.get("/flags?all=1")).status == 200
    url = f"/conversations/{ids['telegram:555']}"
    await client.post(f"{url}/labels", data={"csrf_token": token, "label": "cần xem lại"})
    bad = await client.post(f"{url}/labels", data={"csrf_token": token, "label": "<b>"})
    assert "Nhãn gồm" in await bad.text()
    listing = await (await client.get("/conversations?label=cần+xem+lại")).text()
    assert f'href="{url}"' in listing
    page = await client.post(
        f"{url}/labels/delete", data={"csrf_token": token, "label": "cần xem lại"}
    )
    assert "Đã bỏ nhãn" in await page.text()
    assert (
        f'href="{url}"' not in await (await client.get("/conversations?label=cần+xem+lại")).text()
    )
