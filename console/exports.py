"""CSV exports (conversations, dossiers, ratings), masked exactly like the screens.

UTF-8 with a BOM so Excel shows Vietnamese; cells that a spreadsheet would run as a formula
are prefixed with an apostrophe (CSV injection).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.models import Dossier, SatisfactionRating
from bot.dossiers.submission import STATUS_LABELS
from bot.governance import audit
from bot.governance.pii import mask_text
from bot.payments.texts import PAYMENT_LABELS
from console.conversations import ConversationFilter, list_conversations
from console.dossiers import DossierFilter, dossier_query
from console.masking import Masker
from console.timefmt import fmt

_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA) else text


def to_csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([cell(v) for v in row] for row in rows)
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def _audit(session: Session, officer: str, kind: str, rows: int, filters: dict) -> None:
    audit.record(session, officer, f"export.{kind}", detail={"rows": rows, "filters": filters})


def conversations_csv(session: Session, flt: ConversationFilter, officer: str) -> bytes:
    rows: list[list[object]] = []
    cursor = None
    while True:
        page, cursor = list_conversations(session, flt, cursor, page_size=2000)
        rows.extend(
            [
                r.sender,
                r.channel,
                fmt(r.first_at),
                fmt(r.last_at),
                r.user_messages,
                r.low_confidence,
                r.fallbacks,
                "có" if r.handoff else "",
                r.rating or "",
                "đã liên kết" if r.linked else "ẩn danh",
                r.citizen,
                r.last_intent or "",
            ]
            for r in page
        )
        if cursor is None:
            break
    _audit(session, officer, "conversations", len(rows), flt.params())
    header = [
        "Hội thoại",
        "Kênh",
        "Bắt đầu",
        "Gần nhất",
        "Số tin nhắn",
        "Tin cậy thấp",
        "Không hiểu (fallback)",
        "Chuyển cán bộ",
        "Đánh giá",
        "Danh tính",
        "Công dân",
        "Ý định cuối",
    ]
    return to_csv(header, rows)


def dossiers_csv(session: Session, flt: DossierFilter, officer: str) -> bytes:
    masker = Masker()
    found = session.execute(dossier_query(flt).order_by(Dossier.submitted_at, Dossier.id)).all()
    rows = [
        [
            d.code,
            d.service_code,
            STATUS_LABELS.get(d.status, d.status),
            fmt(d.submitted_at),
            d.expected_on.strftime("%d/%m/%Y") if d.expected_on else "",
            masker.name(name),
            d.channel or "",
            PAYMENT_LABELS.get(paid, "") if paid else "",
        ]
        for d, name, paid in found
    ]
    _audit(session, officer, "dossiers", len(rows), {"status": flt.status})
    header = [
        "Mã hồ sơ",
        "Thủ tục",
        "Trạng thái",
        "Ngày nộp",
        "Hẹn trả",
        "Công dân",
        "Kênh",
        "Lệ phí",
    ]
    return to_csv(header, rows)


def ratings_csv(session: Session, start: dt.datetime, end: dt.datetime, officer: str) -> bytes:
    found = session.execute(
        select(SatisfactionRating, Dossier.code)
        .outerjoin(Dossier, Dossier.id == SatisfactionRating.dossier_id)
        .where(SatisfactionRating.created_at >= start, SatisfactionRating.created_at < end)
        .order_by(SatisfactionRating.created_at)
    ).all()
    rows = [
        [
            fmt(r.created_at),
            r.service_code or "",
            r.rating,
            r.channel or "",
            code or "",
            mask_text(r.comment or ""),
        ]
        for r, code in found
    ]
    _audit(session, officer, "ratings", len(rows), {"from": str(start), "to": str(end)})
    return to_csv(["Thời điểm", "Thủ tục", "Điểm", "Kênh", "Mã hồ sơ", "Góp ý"], rows)
