import datetime as dt

import pytest

from bot.vietnamese.vn import (
    InvalidValue,
    add_years,
    normalize_phone,
    parse_date,
    parse_sex,
    strip_diacritics,
    validate_cccd,
)


def test_valid_cccd_is_returned_as_digits() -> None:
    assert validate_cccd("066 190 001 234") == "066190001234"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("06619000123", "12 chữ số"),
        ("06619000123a", "12 chữ số"),
        ("003190001234", "mã tỉnh '003'"),
        ("999190001234", "mã tỉnh '999'"),
    ],
)
def test_invalid_cccd_says_why(value: str, reason: str) -> None:
    with pytest.raises(InvalidValue, match=reason):
        validate_cccd(value)


def test_cccd_must_match_birth_year_and_sex() -> None:
    # digit 4: 0 = man born 1900s, 3 = woman born 2000s
    assert validate_cccd("066085001234", dt.date(1985, 4, 2), "M")
    assert validate_cccd("066305001234", dt.date(2005, 4, 2), "F")
    with pytest.raises(InvalidValue, match="năm sinh"):
        validate_cccd("066085001234", dt.date(1986, 4, 2), "M")
    with pytest.raises(InvalidValue, match="giới tính"):
        validate_cccd("066085001234", dt.date(1985, 4, 2), "F")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0905123456", "0905123456"),
        ("+84 905 123 456", "0905123456"),
        ("84905123456", "0905123456"),
    ],
)
def test_phone_normalisation(raw: str, expected: str) -> None:
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize("raw", ["0105123456", "090512345", "abc", "0905-123-4567"])
def test_invalid_phone(raw: str) -> None:
    with pytest.raises(InvalidValue):
        normalize_phone(raw)


def test_dates_in_department_formats() -> None:
    assert parse_date("05/03/2026") == dt.date(2026, 3, 5)
    assert parse_date("2026-03-05") == dt.date(2026, 3, 5)
    assert parse_date(dt.datetime(2026, 3, 5, 0, 0)) == dt.date(2026, 3, 5)
    with pytest.raises(InvalidValue, match="ngày/tháng/năm"):
        parse_date("31/02/2026")


def test_sex_and_diacritics() -> None:
    assert parse_sex("Nữ") == "F" and parse_sex("nam") == "M"
    with pytest.raises(InvalidValue):
        parse_sex("khác")
    assert strip_diacritics("Đăng ký khai sinh cho con") == "Dang ky khai sinh cho con"
    assert strip_diacritics("Hòa hoà") == "Hoa hoa"


def test_add_years_on_leap_day() -> None:
    assert add_years(dt.date(2004, 2, 29), 21) == dt.date(2025, 2, 28)
