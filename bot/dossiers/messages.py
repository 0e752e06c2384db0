"""Vietnamese texts of the dossier conversation, built from the catalogue and the records."""

from __future__ import annotations

import datetime as dt

from bot.catalogue.model import Service
from bot.core.clock import to_local
from bot.core.lifecycles import DOSSIER_FINISHED
from bot.core.models import Dossier
from bot.dossiers.submission import STATUS_LABELS
from bot.vietnamese.vn import format_date

RATING_QUESTION = (
    "Ông/Bà có hài lòng với cách hệ thống hỗ trợ lần này không? Xin chấm từ 1 (rất không hài "
    "lòng) đến 5 (rất hài lòng)."
)


def rating_buttons() -> list[dict[str, str]]:
    labels = ["1 - Rất không hài lòng", "2", "3", "4", "5 - Rất hài lòng"]
    return [
        {"title": label, "payload": f'/rate_service{{"rating":"{n}"}}'}
        for n, label in enumerate(labels, 1)
    ]


def consent_question(service: Service) -> str:
    if service.level >= 3:
        return (
            f"Ông/Bà đồng ý nộp hồ sơ này? Lệ phí: {service.fee.text}.\n"
            "Trả lời 1 để đồng ý nộp, 2 để hủy, hoặc gõ “sửa …” (ví dụ “sửa địa chỉ”)."
        )
    return (
        "Ông/Bà xác nhận các thông tin trên để hệ thống lưu tờ khai và hẹn lịch làm thủ tục?\n"
        "Trả lời 1 để xác nhận, 2 để hủy, hoặc gõ “sửa …” (ví dụ “sửa địa chỉ”)."
    )


def consent_buttons() -> list[dict[str, str]]:
    return [
        {"title": "1. Đồng ý", "payload": "1"},
        {"title": "2. Hủy", "payload": "2"},
        {"title": "3. Tự khai, không dùng dữ liệu điền sẵn", "payload": "tự khai"},
    ]


def submitted_text(service: Service, dossier: Dossier, joined: list[tuple[str, str]]) -> str:
    expected = format_date(dossier.expected_on) if dossier.expected_on else "sẽ được thông báo"
    if service.level >= 3:
        text = (
            f"Đã nộp hồ sơ {service.short_name}. Mã hồ sơ: {dossier.code}. "
            f"Lệ phí: {service.fee.text}. Dự kiến có kết quả ngày {expected}."
        )
    else:
        documents = "; ".join(service.documents)
        text = (
            f"Đã lưu tờ khai {service.short_name}, mã hồ sơ {dossier.code}. Thủ tục này cần "
            f"Ông/Bà có mặt tại {service.agency}. Xin mang theo: {documents}. "
            f"Lệ phí: {service.fee.text}."
        )
    for name, code in joined:
        text += (
            f"\nHệ thống đã tự động lập hồ sơ {name} (mã {code}) từ dữ liệu liên thông; "
            "Ông/Bà không cần làm thêm thủ tục."
        )
    return text


def already_submitted_text(dossier: Dossier) -> str:
    return (
        f"Hồ sơ này đã được nộp trước đó với mã {dossier.code} "
        f"({STATUS_LABELS.get(dossier.status, dossier.status).lower()}). "
        "Ông/Bà không cần nộp lại."
    )


def dossier_line(dossier: Dossier, service_name: str) -> str:
    submitted = format_date(to_local(dossier.submitted_at).date()) if dossier.submitted_at else "—"
    return (
        f"• {dossier.code} – {service_name}: "
        f"{STATUS_LABELS.get(dossier.status, dossier.status)} (nộp {submitted})"
    )


def timeline_text(dossier: Dossier, service_name: str) -> str:
    lines = [f"Hồ sơ {dossier.code} – {service_name}:"]
    for change in dossier.history:
        when = to_local(change.created_at).strftime("%H:%M %d/%m/%Y")
        note = f" – {change.note}" if change.note else ""
        lines.append(f"• {when}: {STATUS_LABELS.get(change.status, change.status)}{note}")
    if dossier.expected_on and dossier.status not in DOSSIER_FINISHED:
        lines.append(f"Dự kiến có kết quả ngày {format_date(dossier.expected_on)}.")
    return "\n".join(lines)


def slot_label(slot: dt.datetime) -> str:
    weekdays = ["Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ Nhật"]
    return f"{slot:%H:%M} {weekdays[slot.weekday()]} {slot:%d/%m/%Y}"
