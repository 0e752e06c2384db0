"""Validation of the values a citizen types into a dossier, with Vietnamese error messages."""

from __future__ import annotations

import datetime as dt
import re

from bot.catalogue.model import DossierField
from bot.vietnamese.dates import find_dates
from bot.vietnamese.vn import fold, format_date, normalize_phone, parse_date, validate_cccd

# Which validator a registry-sourced field uses when the registry has no value and we must ask.
_VALIDATOR_OF_SOURCE = {
    "citizen.cccd": "cccd",
    "citizen.full_name": "name",
    "citizen.date_of_birth": "date",
    "citizen.phone": "phone",
    "citizen.email": "email",
    "business.phone": "phone",
    "business.email": "email",
    "record.issued_on": "date",
    "record.valid_until": "date",
    "record.event_date": "date",
}
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_NAME_RE = re.compile(r"^[^\W\d_]+(?: [^\W\d_]+)+$")
_NUMBER_WORDS = {"mot": 1, "hai": 2, "ba": 3, "bon": 4, "tu": 4, "nam": 5}


class FieldError(ValueError):
    """The typed value is not acceptable; the message tells the citizen what to type."""


def validator_of(field: DossierField) -> str:
    if field.source == "ask":
        return field.validate_as
    return _VALIDATOR_OF_SOURCE.get(field.source, "text")


def prompt_of(field: DossierField) -> str:
    if field.prompt:
        return field.prompt
    return f"Xin Ông/Bà cho biết {field.label[0].lower() + field.label[1:]}."


def _choice(field: DossierField, text: str) -> str:
    folded = fold(text).strip(" .")
    if folded.isdigit() and 1 <= int(folded) <= len(field.options):
        return field.options[int(folded) - 1]
    exact = [o for o in field.options if fold(o) == folded]
    partial = [o for o in field.options if folded and folded in fold(o)]
    for candidates in (exact, partial):
        if len(candidates) == 1:
            return candidates[0]
    numbered = "; ".join(f"{i}. {o}" for i, o in enumerate(field.options, 1))
    raise FieldError(f"Xin Ông/Bà chọn một trong các phương án: {numbered} (gõ số thứ tự).")


def _date(text: str, today: dt.date) -> str:
    try:
        return parse_date(text.strip()).isoformat()
    except ValueError:
        pass
    found = find_dates(text, today)
    if found:
        return found[0].value.isoformat()
    raise FieldError(
        "Ngày chưa đúng định dạng. Xin Ông/Bà nhập theo dạng ngày/tháng/năm, ví dụ 15/03/2026."
    )


def clean_value(field: DossierField, raw: str, today: dt.date | None = None) -> str:
    """Normalised value for the field, or FieldError with what to type instead."""
    text = " ".join(raw.split())
    if not text:
        raise FieldError(f"Xin Ông/Bà nhập {field.label[0].lower() + field.label[1:]}.")
    if len(text) > 300:
        raise FieldError("Nội dung quá dài. Xin Ông/Bà nhập ngắn gọn, dưới 300 ký tự.")
    kind = validator_of(field)
    if kind == "choice":
        return _choice(field, text)
    if kind == "date":
        return _date(text, today or dt.date.today())
    if kind == "cccd":
        try:
            return validate_cccd(re.sub(r"\D", "", text))
        except ValueError:
            raise FieldError(
                "Số định danh cá nhân gồm đúng 12 chữ số, ví dụ 066190001234."
            ) from None
    if kind == "phone":
        try:
            return normalize_phone(text)
        except ValueError:
            raise FieldError(
                "Số điện thoại chưa đúng. Xin nhập 10 chữ số, ví dụ 0905123456."
            ) from None
    if kind == "email":
        if not _EMAIL_RE.match(text):
            raise FieldError("Địa chỉ thư điện tử chưa đúng, ví dụ ten@gmail.com.")
        return text
    if kind == "integer":
        digits = text.replace(".", "").replace(",", "").split()[0]
        number = int(digits) if digits.isdigit() else _NUMBER_WORDS.get(fold(digits))
        if number is None or number <= 0 or number > 1_000_000:
            raise FieldError("Xin Ông/Bà nhập một số nguyên dương, ví dụ 2.")
        return str(number)
    if kind == "name":
        if not _NAME_RE.match(text):
            raise FieldError("Họ tên chỉ gồm chữ cái, có ít nhất họ và tên, ví dụ Nguyễn Văn An.")
        return " ".join(part.capitalize() for part in text.split())
    return text


def display_value(field: DossierField, value: str | None) -> str:
    """How a stored value reads in a summary (dates as dd/mm/yyyy, sex in words)."""
    if value is None or value == "":
        return "(chưa có)"
    if validator_of(field) == "date":
        try:
            return format_date(dt.date.fromisoformat(value))
        except ValueError:
            return value
    if field.source == "citizen.sex":
        return {"M": "Nam", "F": "Nữ"}.get(value, value)
    return value
