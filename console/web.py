"""The aiohttp application: dependencies, middlewares (security headers, sessions, CSRF,
roles), template rendering and DB access off the event loop. Routes live in `views_*.py`."""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from urllib.parse import quote, urlparse

import jinja2
from aiohttp import web
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bot.catalogue.model import Catalogue
from bot.core.clock import utcnow
from bot.core.db import unit_of_work
from bot.dossiers.submission import STATUS_LABELS
from bot.identity.proxies import REAL_IP_HEADER, client_address
from bot.payments.texts import PAYMENT_LABELS
from bot.vietnamese.numbers import format_vnd
from console import auth
from console.channels import RasaApi, ReplySender
from console.config import ConsoleSettings
from console.timefmt import duration, fmt

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R", bound=web.StreamResponse)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "console_session"
LOGIN_COOKIE = "console_login"
FLASH_COOKIE = "console_flash"
# /api/payments/ authenticates each request by its signature (console/views_payments.py).
PUBLIC = ("/login", "/static/", "/healthz", "/api/payments/")
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


@dataclass
class Deps:
    """Everything a handler needs, injected (tests pass fakes for Rasa and the channels)."""

    engine: Engine
    tracker: Engine
    settings: ConsoleSettings
    catalogue: Catalogue
    rasa: RasaApi
    replies: ReplySender


DEPS = web.AppKey("deps", Deps)
TEMPLATES = web.AppKey("templates", jinja2.Environment)


def deps(request: web.Request) -> Deps:
    return request.app[DEPS]


def officer(request: web.Request) -> auth.CurrentOfficer:
    return request["officer"]


async def db(request: web.Request, fn: Callable[..., T], *args: Any) -> T:
    """Run `fn(session, *args)` in one unit of work, in a worker thread."""
    engine = deps(request).engine

    def work() -> T:
        with unit_of_work(engine) as session:
            return fn(session, *args)

    return await asyncio.to_thread(work)


def client_ip(request: web.Request) -> str:
    """The officer's address: the peer, or the X-Real-IP a trusted proxy set
    (bot/identity/proxies.py)."""
    trusted = deps(request).settings.trusted_proxies
    return client_address(request.remote, request.headers.get(REAL_IP_HEADER), trusted)


def templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every citizen text is shown as text, never as markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["vn"] = fmt
    env.filters["duration"] = duration
    env.filters["vnd"] = format_vnd
    env.filters["pct"] = lambda v: "—" if v is None else f"{v * 100:.1f} %"
    env.globals["STATUS_LABELS"] = STATUS_LABELS
    env.globals["PAYMENT_LABELS"] = PAYMENT_LABELS
    return env


def render(request: web.Request, name: str, status: int = 200, **context: Any) -> web.Response:
    template = request.app[TEMPLATES].get_template(name)
    flash = request.get("flash")
    current = request.get("officer")
    html = template.render(
        officer=current,
        csrf=current.csrf if current else "",
        flash=flash,
        path=request.path,
        services={s.code: s.name for s in deps(request).catalogue.services},
        simulator_url=deps(request).settings.simulator_url,
        **context,
    )
    return web.Response(text=html, content_type="text/html", status=status)


def redirect(location: str, flash: str | None = None) -> web.HTTPSeeOther:
    answer = web.HTTPSeeOther(location)
    if flash:
        value = base64.urlsafe_b64encode(json.dumps(flash).encode()).decode()
        answer.set_cookie(FLASH_COOKIE, value, httponly=True, samesite="Strict", max_age=60)
    return answer


async def reveal(
    request: web.Request, url: str, target: Callable[[Session], tuple[str, str, str]]
) -> NoReturn:
    """Show this officer a record unmasked (`auth.grant_reveal`) for the reason the form gives,
    then go back to `url`. `target(session)` names the record: (key, kind, what the audit shows)."""
    form = await request.post()
    reason = " ".join(str(form.get("reason", "")).split())[:500]
    if len(reason) < 5:
        raise redirect(url, "Cần ghi lý do xem dữ liệu đầy đủ (ít nhất 5 ký tự).")

    def grant(session: Session) -> None:
        key, kind, shown = target(session)
        auth.grant_reveal(
            session, deps(request).settings, officer(request), key, reason, kind, shown
        )

    await db(request, grant)
    raise redirect(url, "Đã hiển thị dữ liệu đầy đủ; thao tác đã được ghi nhật ký.")


def attachment(body: bytes, name: str, extension: str, content_type: str) -> web.Response:
    """A UTF-8 download saved as `<name>-<UTC date and time>.<extension>`."""
    stamp = utcnow().strftime("%Y%m%d-%H%M")
    return web.Response(
        body=body,
        content_type=content_type,
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}-{stamp}.{extension}"'},
    )


def back(request: web.Request, fallback: str) -> str:
    """The page the form came from, only if it is ours (no open redirect)."""
    target = urlparse(request.headers.get("Referer", ""))
    if target.netloc and target.netloc != request.host:
        return fallback
    path = target.path or fallback
    return path + (f"?{target.query}" if target.query else "") if path.startswith("/") else fallback


def forbidden(request: web.Request) -> web.Response:
    return render(
        request, "error.html", status=403, message="Vai trò của Ông/Bà không có quyền này."
    )


def requires(role: str) -> Callable[[Handler], Handler]:
    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def checked(request: web.Request) -> web.StreamResponse:
            if not officer(request).can(role):
                return forbidden(request)
            return await handler(request)

        return checked

    return wrap


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Referrer-Policy"] = "same-origin"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
    if not request.path.startswith("/static/"):
        headers["Cache-Control"] = "no-store"
    if deps(request).settings.secure_cookies:
        headers["Strict-Transport-Security"] = "max-age=31536000"
    if isinstance(response, web.HTTPException):
        raise response
    return response


@web.middleware
async def sessions(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every page but login needs a live session; forms need the session's CSRF token."""
    flash = request.cookies.get(FLASH_COOKIE)
    if flash:
        try:
            request["flash"] = json.loads(base64.urlsafe_b64decode(flash.encode()))
        except ValueError:
            request["flash"] = None
    if request.path.startswith(PUBLIC):
        response = await handler(request)
        return _clear_flash(request, response)
    settings = deps(request).settings
    token = request.cookies.get(SESSION_COOKIE)
    current = await db(request, auth.load_session, settings, token) if token else None
    if current is None:
        if request.method == "GET":
            raise _clear_flash(request, web.HTTPSeeOther(f"/login?next={quote(request.path_qs)}"))
        raise web.HTTPUnauthorized(text="Phiên làm việc đã hết hạn. Vui lòng đăng nhập lại.")
    request["officer"] = current
    if request.method not in ("GET", "HEAD"):
        form = await request.post()
        given = form.get("csrf_token")
        if not _same_origin(request) or not auth.csrf_ok(
            settings, current.session_id, given if isinstance(given, str) else None
        ):
            log.warning("CSRF check failed for %s %s", request.method, request.path)
            raise web.HTTPForbidden(text="Yêu cầu không hợp lệ (thiếu mã chống giả mạo).")
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _clear_flash(request, exc)
        raise
    return _clear_flash(request, response)


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    """Browsers send Origin on POST; a form posted from another site carries that site."""
    return not origin or urlparse(origin).netloc == request.host


def _clear_flash(request: web.Request, response: R) -> R:
    if FLASH_COOKIE in request.cookies and FLASH_COOKIE not in response.cookies:
        response.del_cookie(FLASH_COOKIE)
    return response


def set_session_cookie(response: web.StreamResponse, settings: ConsoleSettings, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        secure=settings.secure_cookies,
        path="/",
    )


def new_login_nonce() -> str:
    return secrets.token_urlsafe(24)


def create_app(deps_: Deps, background: bool = False) -> web.Application:
    from console import (
        views_conversations,
        views_data_access,
        views_payments,
        views_reports,
        views_work,
    )

    app = web.Application(middlewares=[security_headers, sessions], client_max_size=256 * 1024)
    app[DEPS] = deps_
    app[TEMPLATES] = templates()
    app.router.add_static("/static/", HERE / "static", append_version=False)
    views = (views_conversations, views_work, views_reports, views_payments, views_data_access)
    for module in views:
        app.router.add_routes(module.routes)
    if background:
        from console.jobs import start_jobs

        app.cleanup_ctx.append(start_jobs)
    return app
