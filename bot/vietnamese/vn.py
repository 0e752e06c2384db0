"""Vietnamese identifiers and formats: ID numbers, phones, dates, diacritics."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

# Province codes of the 12-digit personal ID number (Thông tư 07/2016/TT-BCA, Phụ lục).
PROVINCE_CODES = frozenset(
    "001 002 004 006 008 010 011 012 014 015 017 019 020 022 024 025 026 027 030 031 033 034 "
    "035 036 037 038 040 042 044 045 046 048 049 051 052 054 056 058 060 062 064 066 067 068 "
    "070 072 074 075 077 079 080 082 083 084 086 087 089 091 092 093 094 095 096".split()
)
# ASCII digits only: \d alone also matches "٠١٢" or "０１２", which no register holds.
MOBILE_RE = re.compile(r"^0(3|5|7|8|9)\d{8}$", re.ASCII)
LANDLINE_RE = re.compile(r"^02\d{9}$", re.ASCII)
TAX_CODE_RE = re.compile(r"^\d{10}(-?\d{3})?$", re.ASCII)


class InvalidValue(ValueError):
    """A value that fails validation; the message is Vietnamese, for citizens and officers."""


def cccd_century_sex(cccd: str) -> tuple[int, str]:
    """Digit 4 encodes century and sex: 0/1 → 1900s M/F, 2/3 → 2000s M/F, and so on."""
    digit = int(cccd[3])
    return 1900 + (digit // 2) * 100, "M" if digit % 2 == 0 else "F"


def validate_cccd(value: str, date_of_birth: dt.date | None = None, sex: str | None = None) -> str:
    """Return the 12 digits, or raise InvalidValue saying what is wrong."""
    digits = re.sub(r"[\s.\-]", "", str(value))
    if not (digits.isascii() and digits.isdigit()) or len(digits) != 12:
        raise InvalidValue("số định danh (căn cước) phải gồm đúng 12 chữ số")
    if digits[:3] not in PROVINCE_CODES:
        raise InvalidValue(f"mã tỉnh '{digits[:3]}' ở 3 số đầu của số định danh không hợp lệ")
    century, encoded_sex = cccd_century_sex(digits)
    if century > 2100:
        raise InvalidValue("chữ số thứ 4 của số định danh không hợp lệ")
    if date_of_birth is not None:
        year = century + int(digits[4:6])
        if year != date_of_birth.year:
            raise InvalidValue("số định danh không khớp với năm sinh")
    if sex is not None and sex != encoded_sex:
        raise InvalidValue("số định danh không khớp với giới tính")
    return digits


def normalize_phone(value: str) -> str:
    """Return a phone as 0XXXXXXXXX (accepting +84/84 prefixes), or raise InvalidValue."""
    digits = re.sub(r"[\s.\-()]", "", str(value))
    if digits.startswith("+84"):
        digits = "0" + digits[3:]
    elif digits.startswith("84") and len(digits) == 11:
        digits = "0" + digits[2:]
    if not (MOBILE_RE.match(digits) or LANDLINE_RE.match(digits)):
        raise InvalidValue(
            "số điện thoại không hợp lệ (cần 10 số, bắt đầu bằng 03, 05, 07, 08, 09)"
        )
    return digits


def validate_tax_code(value: str) -> str:
    code = str(value).strip()
    if not TAX_CODE_RE.match(code):
        raise InvalidValue("mã số thuế phải gồm 10 chữ số (hoặc 10 số, dấu '-' và 3 số)")
    return code


_DATE_FORMATS = ("%d/%m/%Y", "%Y-%m-%d", "%d-%m-%Y", "%d.%m.%Y")


def parse_date(value: object) -> dt.date:
    """Dates as departments write them: 05/03/2026, 2026-03-05, or an Excel date cell."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise InvalidValue(f"ngày '{text}' không hợp lệ (dùng dạng ngày/tháng/năm, ví dụ 05/03/2026)")


def parse_sex(value: str) -> str:
    key = fold(str(value)).strip()
    if key in ("nam", "m", "male"):
        return "M"
    if key in ("nu", "f", "female"):
        return "F"
    raise InvalidValue(f"giới tính '{value}' không hợp lệ (Nam hoặc Nữ)")


def strip_diacritics(text: str) -> str:
    """Remove Vietnamese tone and vowel marks (đ → d); used for SMS and accent-free matching."""
    decomposed = unicodedata.normalize("NFD", text)
    stripped = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    return unicodedata.normalize("NFC", stripped.replace("đ", "d").replace("Đ", "D"))


def fold(text: str) -> str:
    """Lower case without diacritics (length-preserving): for accent-insensitive matching."""
    return strip_diacritics(text.lower())


def add_years(day: dt.date, years: int) -> dt.date:
    """Anniversary `years` later; 29 February falls back to 28 February."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def format_date(day: dt.date) -> str:
    return day.strftime("%d/%m/%Y")
