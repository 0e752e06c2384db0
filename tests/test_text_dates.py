"""Normalisation, date resolution and phrase matching (pure functions, fixed reference date)."""

from __future__ import annotations

import datetime as dt
import unicodedata

import pytest

from bot.vietnamese.dates import find_dates
from bot.vietnamese.lexicon import Lexicon
from bot.vietnamese.text import normalize_text
from bot.vietnamese.vn import fold

WEDNESDAY = dt.date(2026, 3, 4)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("hoà bình", "hòa bình"),
        ("Khoẻ", "Khỏe"),
        ("thuỷ lợi", "thủy lợi"),
        ("HOÀ", "HÒA"),
        ("quý", "quý"),
        ("hoàng", "hoàng"),
        (unicodedata.normalize("NFD", "hoà nhã Đắk Lắk"), "hòa nhã Đắk Lắk"),
    ],
)
def test_normalisation_unifies_nfd_and_tone_placement(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


def test_normalisation_and_folding_keep_length() -> None:
    text = "Tôi muốn gia hạn tạm trú, hoà nhã, Đắk Lắk"
    assert len(normalize_text(text)) == len(text) == len(fold(text))
    assert fold(text) == "toi muon gia han tam tru, hoa nha, dak lak"


@pytest.mark.parametrize(
    ("text", "span", "iso"),
    [
        ("nhắc tôi thứ hai tuần sau", "thứ hai tuần sau", "2026-03-09"),
        ("nhac toi thu hai tuan sau", "thu hai tuan sau", "2026-03-09"),
        ("thứ 5 tuần sau", "thứ 5 tuần sau", "2026-03-12"),
        ("hẹn ngày 5/3", "ngày 5/3", "2026-03-05"),
        ("ngày 3/3", "ngày 3/3", "2027-03-03"),  # already past this year → next year
        ("15 tháng 3 năm 2026", "15 tháng 3 năm 2026", "2026-03-15"),
        ("ngay 20/03/2026 nhe", "ngay 20/03/2026", "2026-03-20"),
        ("ngày mai", "ngày mai", "2026-03-05"),
        ("mai nhắc lại", "mai", "2026-03-05"),
        ("nhắc lại sau 7 ngày", "sau 7 ngày", "2026-03-11"),
        ("2 tuần nữa", "2 tuần nữa", "2026-03-18"),
        ("sau 1 tháng", "sau 1 tháng", "2026-04-04"),
        ("chủ nhật", "chủ nhật", "2026-03-08"),
        ("để tuần sau", "tuần sau", "2026-03-09"),
        ("2026-12-01", "2026-12-01", "2026-12-01"),
    ],
)
def test_vietnamese_dates(text: str, span: str, iso: str) -> None:
    (match,) = find_dates(text, WEDNESDAY)
    assert (text[match.start : match.end], match.value.isoformat()) == (span, iso)


@pytest.mark.parametrize(
    "text",
    [
        "mã 482913",
        "số 066190001234",
        "hồ sơ DLK-261120-00042",
        "ngày 31/2",
        "chị Mai ơi",
        "thủ tục",
    ],
)
def test_things_that_are_not_dates(text: str) -> None:
    assert find_dates(text, WEDNESDAY) == []


LEXICON = Lexicon(
    {
        "gia hạn tạm trú": ("service", "tam_tru_gia_han"),
        "tạm trú": ("service", "tam_tru_gia_han"),
        "cân": ("service", "kiem_dinh_phuong_tien_do"),
        "hài lòng": ("rating", "4"),
        "rất hài lòng": ("rating", "5"),
        "không hài lòng": ("rating", "2"),
    }
)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("toi muon gia han tam tru", [("gia han tam tru", "tam_tru_gia_han")]),
        ("Tôi muốn gia han tạm trú", [("gia han tạm trú", "tam_tru_gia_han")]),
        ("kiểm định cân điện tử", [("cân", "kiem_dinh_phuong_tien_do")]),
        ("tôi cần giúp", []),  # "cần" folds to "can" but one-syllable phrases need diacritics
        ("RAT HAI LONG", [("RAT HAI LONG", "5")]),
        ("khong hai long lam", [("khong hai long", "2")]),
    ],
)
def test_lexicon_longest_accent_insensitive_match(text: str, found: list[tuple[str, str]]) -> None:
    assert [(text[m.start : m.end], m.value) for m in LEXICON.find(text)] == found
