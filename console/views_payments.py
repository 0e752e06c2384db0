"""Routes: the payment platform's signed callback, and the officers' queue of callbacks that
did not fit their payment request.

`POST /api/payments/callback` is not an officer page: it needs no session and no CSRF token,
and is authenticated by its HMAC signature and timestamp alone (`bot.payments.callbacks`); a
forged, stale or malformed request changes nothing and is logged for operators.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.clock import utcnow
from bot.core.lifecycles import CallbackOutcome
from bot.core.models import PaymentCallback
from bot.payments.callbacks import (
    CallbackInvalid,
    CallbackResult,
    apply_notice,
    parse_notice,
    resolve_mismatch,
    signature_ok,
)
from bot.payments.settings import PaymentSettings, callback_secret
from console.web import db, officer, redirect, render, requires

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
CALLBACK_PATH = "/api/payments/callback"
MAX_CALLBACK_BYTES = 16 * 1024


@routes.post(CALLBACK_PATH)
async def payment_callback(request: web.Request) -> web.Response:
    if (request.content_length or 0) > MAX_CALLBACK_BYTES:
        return web.json_response({"error": "body too large"}, status=413)
    body = await request.content.read(MAX_CALLBACK_BYTES + 1)
    if len(body) > MAX_CALLBACK_BYTES:
        return web.json_response({"error": "body too large"}, status=413)
    settings = PaymentSettings.from_env()
    trusted = signature_ok(
        callback_secret(),
        request.headers.get("X-Timestamp", ""),
        request.headers.get("X-Signature", ""),
        body,
        time.time(),
        settings.callback_max_age_seconds,
    )
    if not trusted:
        log.warning("payment callback refused: bad signature or stale timestamp")
        return web.json_response({"error": "signature"}, status=401)
    try:
        notice = parse_notice(body)
    except CallbackInvalid as exc:
        log.warning("payment callback refused: %s", exc)
        return web.json_response({"error": str(exc)}, status=400)

    def apply(session: Session) -> CallbackResult:
        return apply_notice(session, notice, utcnow())

    result = await db(request, apply)
    if result.outcome == "mismatch":
        log.warning("payment callback %s kept for review: %s", notice.transaction_id, result.reason)
    return web.json_response({"result": result.outcome})


@routes.get("/payments/mismatches")
async def mismatches(request: web.Request) -> web.Response:
    def load(session: Session) -> tuple[list[PaymentCallback], list[PaymentCallback]]:
        rows = session.scalars(
            select(PaymentCallback)
            .where(PaymentCallback.outcome != CallbackOutcome.APPLIED)
            .order_by(PaymentCallback.received_at.desc())
            .limit(200)
        ).all()
        open_ = [r for r in rows if r.outcome == CallbackOutcome.MISMATCH]
        return open_, [r for r in rows if r.outcome == CallbackOutcome.RESOLVED][:50]

    open_rows, resolved = await db(request, load)
    return render(request, "payments.html", open_rows=open_rows, resolved=resolved)


@routes.post(r"/payments/mismatches/{id:\d+}/resolve")
@requires("supervisor")
async def resolve(request: web.Request) -> web.Response:
    """Money that matched no request is a supervisor's to refund or match by hand."""
    form = await request.post()
    note = " ".join(str(form.get("note", "")).split())
    if len(note) < 5:
        raise redirect(
            "/payments/mismatches", "Cần ghi rõ đã xử lý thế nào (hoàn tiền, đối soát…)."
        )
    done = await db(
        request,
        resolve_mismatch,
        int(request.match_info["id"]),
        officer(request).username,
        note,
        utcnow(),
    )
    raise redirect(
        "/payments/mismatches", "Đã ghi nhận xử lý." if done else "Mục này đã được xử lý."
    )
