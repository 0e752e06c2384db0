"""Routes: sign-in, conversation list and transcript, reveal, labels, comments, flags."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn
from urllib.parse import urlsplit

from aiohttp import web
from sqlalchemy.orm import Session

from bot.core.models import ConversationSummary
from console import auth, labels
from console.conversations import ConversationFilter, list_conversations, transcript
from console.indexer import refresh
from console.web import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    attachment,
    back,
    client_ip,
    db,
    deps,
    new_login_nonce,
    officer,
    redirect,
    render,
    requires,
    reveal,
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

    def load(session: Session):
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
    def target(session: Session) -> tuple[str, str, str]:
        summary = _summary(session, _conversation_id(request))
        return f"c:{summary.id}", "conversation", summary.sender_id

    await reveal(request, f"/conversations/{_conversation_id(request)}", target)


async def _for_sender(
    request: web.Request,
    done: str,
    fn: Callable[..., None],
    *args: Any,
    to_form_page: bool = False,
) -> NoReturn:
    """Run `fn(session, sender_id, *args)` for the conversation, then back to it (or to the
    page the form was on) with `done`, or with the LabelError's message."""
    url = f"/conversations/{_conversation_id(request)}"

    def work(session: Session) -> None:
        summary = _summary(session, _conversation_id(request))
        fn(session, summary.sender_id, *args)

    try:
        await db(request, work)
    except labels.LabelError as exc:
        raise redirect(url, str(exc)) from None
    raise redirect(back(request, url) if to_form_page else url, done)


@routes.post(r"/conversations/{id:\d+}/labels")
async def label_add(request: web.Request) -> web.Response:
    label = str((await request.post()).get("label", ""))
    await _for_sender(request, "Đã gắn nhãn.", labels.add_label, label, officer(request).username)


@routes.post(r"/conversations/{id:\d+}/labels/delete")
async def label_remove(request: web.Request) -> web.Response:
    label = str((await request.post()).get("label", ""))
    await _for_sender(request, "Đã bỏ nhãn.", labels.remove_label, label, officer(request).username)


@routes.post(r"/conversations/{id:\d+}/comments")
async def comment_add(request: web.Request) -> web.Response:
    text = str((await request.post()).get("text", ""))
    await _for_sender(
        request, "Đã lưu ghi chú.", labels.add_comment, officer(request).username, text
    )


@routes.post(r"/conversations/{id:\d+}/flags")
async def flag_add(request: web.Request) -> web.Response:
    form = await request.post()
    event_id = str(form.get("event_id", ""))
    if not event_id.isdigit():
        raise redirect(
            f"/conversations/{_conversation_id(request)}",
            "Không tìm thấy tin nhắn của công dân này.",
        )

    def flag(session: Session, sender_id: str) -> None:
        labels.flag_message(
            session,
            deps(request).tracker,
            sender_id,
            int(event_id),
            str(form.get("intent", "")),
            officer(request).username,
        )

    await _for_sender(request, "Đã đánh dấu tin nhắn bị hiểu sai.", flag, to_form_page=True)


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
    return attachment(text.encode("utf-8"), "nlu-flagged", "yml", "application/x-yaml")
