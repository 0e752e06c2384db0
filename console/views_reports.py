"""Routes: dashboard, CSV exports, audit log."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.clock import utcnow
from bot.core.models import AuditEntry
from bot.dossiers.submission import STATUS_LABELS
from bot.governance.reports import (
    SATISFACTION_TARGET,
    SUBMISSION_TARGET,
    Dashboard,
    build_report,
)
from console import exports
from console.charts import bar_chart
from console.conversations import ConversationFilter
from console.dossiers import DossierFilter
from console.timefmt import day_start_utc, local, parse_day
from console.web import Handler, attachment, db, deps, officer, render, requires

routes = web.RouteTableDef()


def period(request: web.Request) -> tuple[dt.date, dt.date]:
    """The chosen local days [from, to]; the last 30 days by default."""
    today = (local(utcnow()) or utcnow()).date()
    start = parse_day(request.query.get("from")) or today - dt.timedelta(days=29)
    end = parse_day(request.query.get("to")) or today
    return (start, end) if start <= end else (end, start)


def _bounds(start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
    return day_start_utc(start), day_start_utc(end + dt.timedelta(days=1))


@routes.get("/dashboard")
async def dashboard(request: web.Request) -> web.Response:
    start, end = period(request)
    d = deps(request)
    tiers = {s.code: s.authority for s in d.catalogue.services}
    report = await db(request, build_report, *_bounds(start, end), d.tracker, tiers)
    names = {s.code: s.name for s in d.catalogue.services}
    board = Dashboard.of(report)
    overall = board.overall
    charts = {
        "satisfaction": bar_chart(
            [
                (names.get(code, code), 100 * ind.satisfaction_rate)
                for code, ind in board.per_service
                if ind.satisfaction_rate is not None
            ],
            " %",
            max_value=100,
            target=100 * SATISFACTION_TARGET,
        ),
        "status": bar_chart(
            [(STATUS_LABELS.get(s, s), n) for s, n in sorted(overall.dossiers.items())]
        ),
        "ratings": bar_chart([(f"{k} sao", n) for k, n in sorted(overall.histogram.items())]),
    }
    return render(
        request,
        "dashboard.html",
        start=start,
        end=end,
        board=board,
        charts=charts,
        targets={"satisfaction": SATISFACTION_TARGET, "submission": SUBMISSION_TARGET},
    )


@routes.get("/exports")
async def exports_page(request: web.Request) -> web.Response:
    start, end = period(request)
    return render(request, "exports.html", start=start, end=end)


# The CSV exports (supervisors only): /exports/<path>.csv, saved as <name>-<time>.csv, built
# by `build(session, *arguments(request), officer)`.
Arguments = Callable[[web.Request], Sequence[Any]]
_EXPORTS: tuple[tuple[str, str, Callable[..., bytes], Arguments], ...] = (
    (
        "conversations",
        "hoi-thoai",
        exports.conversations_csv,
        lambda request: (ConversationFilter.from_query(request.query),),
    ),
    (
        "dossiers",
        "ho-so",
        exports.dossiers_csv,
        lambda request: (DossierFilter.from_query(request.query),),
    ),
    ("ratings", "danh-gia", exports.ratings_csv, lambda request: _bounds(*period(request))),
)


def _export(name: str, build: Callable[..., bytes], arguments: Arguments) -> Handler:
    @requires("supervisor")
    async def export(request: web.Request) -> web.StreamResponse:
        body = await db(request, build, *arguments(request), officer(request).username)
        return attachment(body, name, "csv", "text/csv")

    return export


for _path, _name, _build, _arguments in _EXPORTS:
    routes.get(f"/exports/{_path}.csv")(_export(_name, _build, _arguments))


@routes.get("/audit")
@requires("admin")
async def audit_log(request: web.Request) -> web.Response:
    def load(session: Session) -> list[AuditEntry]:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(300)))

    entries = await db(request, load)
    return render(request, "audit.html", entries=entries)
