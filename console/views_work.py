"""Routes: hand-off queue (take, reply, close) and dossier queue (detail, status, reveal)."""

from __future__ import annotations

import secrets

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.clock import utcnow
from bot.core.lifecycles import HandoffStatus
from bot.core.models import ConversationSummary, Dossier, Handoff
from bot.dossiers.submission import STATUS_LABELS
from console import dossiers, handoffs
from console.conversations import transcript
from console.indexer import refresh
from console.web import db, deps, officer, redirect, render, reveal

routes = web.RouteTableDef()


def _id(request: web.Request) -> int:
    return int(request.match_info["id"])


@routes.get("/handoffs")
async def handoff_queue(request: web.Request) -> web.Response:
    rows = await db(request, handoffs.queue)
    return render(request, "handoffs.html", rows=rows)


@routes.get(r"/handoffs/{id:\d+}")
async def handoff_detail(request: web.Request) -> web.Response:
    d, current = deps(request), officer(request)

    def load(session: Session):
        handoff = session.get(Handoff, _id(request))
        if handoff is None:
            raise web.HTTPNotFound(text="Không tìm thấy yêu cầu.")
        refresh(session, d.tracker, [handoff.sender_id], d.settings.low_confidence)
        summary = session.scalar(
            select(ConversationSummary).where(ConversationSummary.sender_id == handoff.sender_id)
        )
        view = None
        if summary is not None:
            revealed = current.revealed(f"c:{summary.id}")
            view = transcript(
                session, d.tracker, d.catalogue, summary, revealed, d.settings.low_confidence
            )
        return handoff, view, handoffs.replies(session, handoff.id)

    handoff, view, sent = await db(request, load)
    return render(
        request,
        "handoff.html",
        h=handoff,
        t=view,
        replies=sent,
        reply_key=secrets.token_urlsafe(16),
        waited=handoffs.waited(handoff.created_at, utcnow()),
        mine=handoff.status == HandoffStatus.TAKEN and handoff.officer == current.username,
    )


@routes.post(r"/handoffs/{id:\d+}/take")
async def handoff_take(request: web.Request) -> web.Response:
    error = await db(request, handoffs.take, _id(request), officer(request))
    raise redirect(f"/handoffs/{_id(request)}", error or "Ông/Bà đã nhận yêu cầu này.")


@routes.post(r"/handoffs/{id:\d+}/reply")
async def handoff_reply(request: web.Request) -> web.Response:
    form = await request.post()
    d = deps(request)
    error = await handoffs.reply(
        d.engine,
        d.replies,
        d.rasa,
        _id(request),
        officer(request),
        str(form.get("text", "")),
        str(form.get("reply_key", "")),
    )
    raise redirect(f"/handoffs/{_id(request)}", error or "Đã gửi trả lời tới công dân.")


@routes.post(r"/handoffs/{id:\d+}/close")
async def handoff_close(request: web.Request) -> web.Response:
    d = deps(request)
    error = await handoffs.close(d.engine, d.rasa, _id(request), officer(request))
    if error:
        raise redirect(f"/handoffs/{_id(request)}", error)
    raise redirect("/handoffs", "Đã đóng yêu cầu; trợ lý ảo tiếp tục hội thoại.")


@routes.get("/dossiers")
async def dossier_queue(request: web.Request) -> web.Response:
    flt = dossiers.DossierFilter.from_query(request.query)

    def load(session: Session):
        return dossiers.queue(session, flt), dossiers.status_counts(session)

    (rows, more), counts = await db(request, load)
    return render(request, "dossiers.html", flt=flt, rows=rows, more=more, counts=counts)


def _dossier(session: Session, dossier_id: int) -> Dossier:
    dossier = session.get(Dossier, dossier_id)
    if dossier is None:
        raise web.HTTPNotFound(text="Không tìm thấy hồ sơ.")
    return dossier


@routes.get(r"/dossiers/{id:\d+}")
async def dossier_detail(request: web.Request) -> web.Response:
    d, current = deps(request), officer(request)

    def load(session: Session) -> dossiers.DossierView:
        dossier = _dossier(session, _id(request))
        revealed = current.revealed(f"d:{dossier.id}")
        return dossiers.dossier_view(session, d.catalogue, dossier, revealed)

    view = await db(request, load)
    return render(request, "dossier.html", v=view, labels=STATUS_LABELS)


@routes.post(r"/dossiers/{id:\d+}/status")
async def dossier_status(request: web.Request) -> web.Response:
    form = await request.post()
    error = await db(
        request,
        dossiers.change_status,
        _id(request),
        str(form.get("status", "")),
        str(form.get("note", "")),
        officer(request).username,
    )
    raise redirect(f"/dossiers/{_id(request)}", error or "Đã cập nhật trạng thái hồ sơ.")


@routes.post(r"/dossiers/{id:\d+}/reveal")
async def dossier_reveal(request: web.Request) -> web.Response:
    """Processing a dossier needs its data: any officer may unmask one, with a reason."""

    def target(session: Session) -> tuple[str, str, str]:
        dossier = _dossier(session, _id(request))
        return f"d:{dossier.id}", "dossier", dossier.code

    await reveal(request, f"/dossiers/{_id(request)}", target)
