"""Routes: one citizen's data uses ("who has used my data?") exported as CSV, on request.

A supervisor enters the citizen's ID number and the reason (the citizen's request, usually);
the export is audited for that citizen (`bot.governance.data_access.note_export`), so it shows
in the list itself, like every reveal. The list is the one the citizen sees in the chat: no
officer's name, reasons with ID and phone numbers masked.
"""

from __future__ import annotations

from typing import NoReturn

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.models import Citizen
from bot.governance import data_access
from bot.vietnamese.vn import InvalidValue, validate_cccd
from console.exports import to_csv
from console.web import attachment, db, officer, redirect, render, requires

routes = web.RouteTableDef()
PAGE = "/data-access"
EXPORT = f"{PAGE}/export.csv"
NOT_FOUND = "Không tìm thấy công dân có số định danh này."


def export_csv(session: Session, cccd: str, reason: str, officer_name: str) -> bytes | None:
    """The citizen's data uses as CSV, audited; None when no citizen has this ID number (the
    attempt is audited too, without the number)."""
    citizen = session.scalar(select(Citizen).where(Citizen.cccd == cccd))
    if citizen is None:
        data_access.note_export(session, officer_name, None, reason)
        return None
    uses = data_access.data_uses(session, citizen.id, data_access.EXPORT_LIMIT)
    data_access.note_export(session, officer_name, citizen.id, reason, len(uses))
    return to_csv(data_access.CSV_HEADER, data_access.csv_rows(uses))


@routes.get(PAGE)
@requires("supervisor")
async def data_access_page(request: web.Request) -> web.Response:
    return render(request, "data_access.html")


@routes.post(EXPORT)
@requires("supervisor")
async def data_access_export(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    reason = " ".join(str(form.get("reason", "")).split())[:500]
    try:
        cccd = validate_cccd(str(form.get("cccd", "")))
    except InvalidValue as exc:
        _back(f"Số định danh không hợp lệ: {exc}.")
    if len(reason) < 5:
        _back("Cần ghi lý do xuất danh sách (ít nhất 5 ký tự).")
    body = await db(request, export_csv, cccd, reason, officer(request).username)
    if body is None:
        _back(NOT_FOUND)
    return attachment(body, "du-lieu-da-su-dung", "csv", "text/csv")


def _back(message: str) -> NoReturn:
    raise redirect(PAGE, message)
