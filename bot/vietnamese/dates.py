"""Vietnamese date expressions resolved to ISO dates, with or without diacritics.

"thứ hai tuần sau", "ngày 5/3", "15 tháng 3 năm 2026", "ngày mai", "sau 7 ngày"… Matching runs
on the folded text (lower case, no diacritics, same length), so spans map back 1:1.
Without a year, a day and month mean the next such date on or after the reference day.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from bot.vietnamese.vn import fold

WEEKDAYS = {"hai": 0, "ba": 1, "tu": 2, "nam": 3, "sau": 4, "bay": 5}
_WEEKDAY_WORD = r"(?:thu\s*(?P<wd>hai|ba|tu|nam|sau|bay|[2-7])|(?P<cn>chu\s*nhat|cn))"
_WEEK_REF = r"(?:\s+(?P<week>tuan\s*(?:sau|toi|nay|truoc)))?"
_DMY_NUM = r"(?P<d>\d{1,2})\s*[/\-.]\s*(?P<m>\d{1,2})(?:\s*[/\-.]\s*(?P<y>\d{4}|\d{2}))?"
_DMY_WORDS = r"(?P<d2>\d{1,2})\s+thang\s+(?P<m2>\d{1,2})(?:\s+(?:nam\s+)?(?P<y2>\d{4}))?"
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("iso", re.compile(r"(?<!\d)(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})(?!\d)")),
    ("dmy", re.compile(r"(?:(?:ngay|mung|mong)\s+)?(?<![\d/])" + _DMY_NUM + r"(?![\d/])")),
    ("dmy_words", re.compile(r"(?:(?:ngay|mung|mong)\s+)?" + _DMY_WORDS + r"(?!\d)")),
    ("weekday", re.compile(r"(?:(?:vao|ngay)\s+)?" + _WEEKDAY_WORD + _WEEK_REF + r"\b")),
    (
        "relative",
        re.compile(
            r"(?:sau\s+(?P<n>\d{1,3})\s+(?P<unit>ngay|tuan|thang)(?:\s+nua)?"
            r"|(?P<n2>\d{1,3})\s+(?P<unit2>ngay|tuan|thang)\s+(?:nua|toi))\b"
        ),
    ),
    (
        "named",
        re.compile(
            r"\b(?P<word>hom\s*nay|ngay\s*mai|ngay\s*kia|ngay\s*mot|hom\s*qua)\b"
            r"|^(?P<bare>mai)\b"  # bare "mai" only opening a message: Mai is also a name
        ),
    ),
    ("week", re.compile(r"\b(?P<wk>tuan\s*(?:sau|toi))\b")),
    ("month", re.compile(r"\b(?P<mo>thang\s*(?:sau|toi))\b")),
]
NAMED_OFFSETS = {"homnay": 0, "ngaymai": 1, "ngaykia": 2, "ngaymot": 2, "homqua": -1}


@dataclass(frozen=True)
class DateMatch:
    start: int
    end: int
    value: dt.date


def _make_date(year: int, month: int, day: int) -> dt.date | None:
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def _day_month(day: int, month: int, year: str | None, today: dt.date) -> dt.date | None:
    if year:
        full = int(year) + (2000 if len(year) == 2 else 0)
        return _make_date(full, month, day)
    candidate = _make_date(today.year, month, day)
    if candidate is not None and candidate < today:
        candidate = _make_date(today.year + 1, month, day)
    return candidate


def _add_months(day: dt.date, months: int) -> dt.date:
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    for d in (day.day, 30, 29, 28):
        result = _make_date(year, month, d)
        if result:
            return result
    raise AssertionError("unreachable")


def _weekday(m: re.Match[str], today: dt.date) -> dt.date:
    if m.group("cn"):
        target = 6
    else:
        word = m.group("wd")
        target = int(word) - 2 if word.isdigit() else WEEKDAYS[word]
    week = (m.group("week") or "").replace(" ", "")
    monday = today - dt.timedelta(days=today.weekday())
    if week in ("tuansau", "tuantoi"):
        return monday + dt.timedelta(days=7 + target)
    if week == "tuantruoc":
        return monday + dt.timedelta(days=target - 7)
    if week == "tuannay":
        return monday + dt.timedelta(days=target)
    ahead = (target - today.weekday()) % 7
    return today + dt.timedelta(days=ahead)


def _resolve(kind: str, m: re.Match[str], today: dt.date) -> dt.date | None:
    if kind == "iso":
        return _make_date(int(m["y"]), int(m["m"]), int(m["d"]))
    if kind == "dmy":
        return _day_month(int(m["d"]), int(m["m"]), m["y"], today)
    if kind == "dmy_words":
        return _day_month(int(m["d2"]), int(m["m2"]), m["y2"], today)
    if kind == "weekday":
        return _weekday(m, today)
    if kind == "relative":
        n, unit = int(m["n"] or m["n2"]), m["unit"] or m["unit2"]
        if unit == "thang":
            return _add_months(today, n)
        return today + dt.timedelta(days=n * (7 if unit == "tuan" else 1))
    if kind == "named":
        word = m["word"] or "ngay" + m["bare"]
        return today + dt.timedelta(days=NAMED_OFFSETS[word.replace(" ", "")])
    if kind == "week":  # "tuần sau": Monday of next week
        return today - dt.timedelta(days=today.weekday()) + dt.timedelta(days=7)
    if kind == "month":  # "tháng sau": first day of next month
        return _add_months(today.replace(day=1), 1)
    return None


def find_dates(text: str, today: dt.date) -> list[DateMatch]:
    """Non-overlapping date expressions, earliest first; earlier patterns win overlaps."""
    folded = fold(text)
    taken: list[DateMatch] = []
    for kind, pattern in _PATTERNS:
        for m in pattern.finditer(folded):
            if any(m.start() < t.end and t.start < m.end() for t in taken):
                continue
            value = _resolve(kind, m, today)
            if value is not None:
                taken.append(DateMatch(m.start(), m.end(), value))
    return sorted(taken, key=lambda t: t.start)
