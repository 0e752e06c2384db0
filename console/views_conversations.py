"""Routes: sign-in, conversation list and transcript, reveal, labels, comments, flags."""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web
from sqlalchemy.orm import Session

from bot.models import ConversationSummary, utcnow
from console import auth, labels
from console.conversations import ConversationFilter, list_conversations, transcript
from console.indexer import refresh
from console.web import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    back,
    client_ip,
    db,
    deps,
    new_login_nonce,
    officer,
    redirect,
    render,
    requires,
    set_session_cookie,
)

routes = web.RouteTableDef()


def _safe_next(target: str | None) -> str:
    """`target` if it is a path on this site, else "/". Browsers drop tabs and newlines from a
    Location and read a backslash as a slash, so `/<tab>/evil` would be `//evil`: refused."""
    if (
        target
        and target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        and all(ch.isprintable() and not ch.isspace() for ch in target)
        and not urlsplit(target).scheme
    ):
        return target
    return "/"


@routes.get("/healthz")
async def healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


@routes.get("/")
async def home(_: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/conversations")


@routes.get("/login")
async def login_page(request: web.Request) -> web.Response:
    nonce = request.cookies.get(LOGIN_COOKIE) or new_login_nonce()
    token = auth.login_csrf(deps(request).settings, nonce)
    response = render(
        request, "login.html", login_token=token, next=_safe_next(request.query.get("next"))
    )
    response.set_cookie(LOGIN_COOKIE, nonce, httponly=True, samesite="Strict", max_age=3600)
    return response


@routes.post("/login")
async def login_submit(request: web.Request) -> web.Response:
    settings = deps(request).settings
    form = await request.post()
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    given = str(form.get("csrf_token", ""))
    if not nonce or not auth.csrf_ok_login(settings, nonce, given):
        raise web.HTTPForbidden(text="Yêu cầu không hợp lệ (thiếu mã chống giả mạo).")
    result = await db(
        request,
        auth.login,
        settings,
        str(form.get("username", "")),
        str(form.get("password", "")),
        client_ip(request),
    )
    if result.token is None:
        token = auth.login_csrf(settings, nonce)
        return render(
            request,
            "login.html",
            status=429 if result.throttled else 401,
            login_token=token,
            next=_safe_next(str(form.get("next", ""))),
            error=result.error,
        )
    answer = web.HTTPSeeOther(_safe_next(str(form.get("next", ""))))
    set_session_cookie(answer, settings, result.token)
    answer.del_cookie(LOGIN_COOKIE)
    raise answer


@routes.post("/logout")
async def logout(request: web.Request) -> web.Response:
    await db(request, auth.logout, officer(request))
    answer = web.HTTPSeeOther("/login")
    answer.del_cookie(SESSION_COOKIE)
    raise answer


@routes.get("/conversations")
async def conversation_list(request: web.Request) -> web.Response:
    flt = ConversationFilter.from_query(request.query)
    rows, cursor = await db(
        request,
        list_conversations,
        flt,
        request.query.get("after"),
        deps(request).settings.page_size,
    )
    return render(
        request,
        "conversations.html",
        flt=flt,
        rows=rows,
        next_cursor=cursor,
        first_page=not request.query.get("after"),
        intents=labels.domain_intents(),
    )


def _summary(session: Session, conversation_id: int) -> ConversationSummary:
    summary = session.get(ConversationSummary, conversation_id)
    if summary is None:
        raise web.HTTPNotFound(text="Không tìm thấy hội thoại.")
    session.expunge(summary)
    return summary


def _conversation_id(request: web.Request) -> int:
    return int(request.match_info["id"])


@routes.get(r"/conversations/{id:\d+}")
async def conversation_detail(request: web.Request) -> web.Response:
    d, current = deps(request), officer(request)
    key = f"c:{_conversation_id(request)}"

    def load(session: Session):  # type: ignore[no-untyped-def]
        summary = _summary(session, _conversation_id(request))
        refresh(session, d.tracker, [summary.sender_id], d.settings.low_confidence)
        summary = _summary(session, summary.id)
        return transcript(
            session,
            d.tracker,
            d.catalogue,
            summary,
            current.revealed(key),
            d.settings.low_confidence,
        )

    view = await db(request, load)
    return render(
        request,
        "transcript.html",
        t=view,
        intents=labels.domain_intents(),
        keep=labels.KEEP,
        can_reveal=current.can("supervisor"),
        reveal_minutes=d.settings.reveal_minutes,
    )


@routes.post(r"/conversations/{id:\d+}/reveal")
@requires("supervisor")
async def conversation_reveal(request: web.Request) -> web.Response:
    form = await request.post()
    reason = " ".join(str(form.get("reason", "")).split())[:500]
    url = f"/conversations/{_conversation_id(request)}"
    if len(reason) < 5:
        raise redirect(url, "Cần ghi lý do xem dữ liệu đầy đủ (ít nhất 5 ký tự).")

    def grant(session: Session) -> None:
        summary = _summary(session, _conversation_id(request))
        auth.grant_reveal(
            session,
            deps(request).settings,
            officer(request),
            f"c:{summary.id}",
            reason,
            "conversation",
            summary.sender_id,
        )

    await db(request, grant)
    raise redirect(url, "Đã hiển thị dữ liệu đầy đủ; thao tác đã được ghi nhật ký.")


async def _with_sender(request: web.Request, fn, *args) -> None:  # type: ignore[no-untyped-def]
    def work(session: Session) -> None:
        summary = _summary(session, _conversation_id(request))
        fn(session, summary.sender_id, *args)

    await db(request, work)


@routes.post(r"/conversations/{id:\d+}/labels")
async def label_add(request: web.Request) -> web.Response:
    form = await request.post()
    url = f"/conversations/{_conversation_id(request)}"
    try:
        await _with_sender(
            request, labels.add_label, str(form.get("label", "")), officer(request).username
        )
    except labels.LabelError as exc:
        raise redirect(url, str(exc)) from None
    raise redirect(url, "Đã gắn nhãn.")


@routes.post(r"/conversations/{id:\d+}/labels/delete")
async def label_remove(request: web.Request) -> web.Response:
    form = await request.post()
    await _with_sender(
        request, labels.remove_label, str(form.get("label", "")), officer(request).username
    )
    raise redirect(f"/conversations/{_conversation_id(request)}", "Đã bỏ nhãn.")


@routes.post(r"/conversations/{id:\d+}/comments")
async def comment_add(request: web.Request) -> web.Response:
    form = await request.post()
    url = f"/conversations/{_conversation_id(request)}"
    try:
        await _with_sender(
            request, labels.add_comment, officer(request).username, str(form.get("text", ""))
        )
    except labels.LabelError as exc:
        raise redirect(url, str(exc)) from None
    raise redirect(url, "Đã lưu ghi chú.")


@routes.post(r"/conversations/{id:\d+}/flags")
async def flag_add(request: web.Request) -> web.Response:
    form = await request.post()
    url = f"/conversations/{_conversation_id(request)}"
    event_id = str(form.get("event_id", ""))
    if not event_id.isdigit():
        raise redirect(url, "Không tìm thấy tin nhắn của công dân này.")

    def flag(session: Session, sender_id: str) -> None:
        labels.flag_message(
            session,
            deps(request).tracker,
            sender_id,
            int(event_id),
            str(form.get("intent", "")),
            officer(request).username,
        )

    try:
        await _with_sender(request, flag)
    except labels.LabelError as exc:
        raise redirect(url, str(exc)) from None
    raise redirect(back(request, url), "Đã đánh dấu tin nhắn bị hiểu sai.")


@routes.get("/flags")
async def flag_list(request: web.Request) -> web.Response:
    include = request.query.get("all") == "1"
    flags = await db(request, labels.list_flags, include)
    return render(request, "flags.html", flags=flags, include_exported=include)


@routes.post("/flags/export")
@requires("supervisor")
async def flag_export(request: web.Request) -> web.Response:
    form = await request.post()
    text = await db(request, labels.export_flags, officer(request).username, form.get("all") == "1")
    stamp = utcnow().strftime("%Y%m%d-%H%M")
    return web.Response(
        text=text,
        content_type="application/x-yaml",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="nlu-flagged-{stamp}.yml"'},
    )
