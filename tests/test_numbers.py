import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.vietnamese.numbers import MAX_AMOUNT, amount_in_words, format_vnd


@pytest.mark.parametrize(
    ("amount", "words"),
    [
        (0, "Không đồng"),
        (15000, "Mười lăm nghìn đồng"),
        (50000, "Năm mươi nghìn đồng"),
        (135000, "Một trăm ba mươi lăm nghìn đồng"),
        (200000, "Hai trăm nghìn đồng"),
        (1200000, "Một triệu hai trăm nghìn đồng"),
        (2500000, "Hai triệu năm trăm nghìn đồng"),
        (105000, "Một trăm linh năm nghìn đồng"),
        (1005000, "Một triệu không trăm linh năm nghìn đồng"),
        (21000, "Hai mươi mốt nghìn đồng"),
        (24000, "Hai mươi tư nghìn đồng"),
        (11000, "Mười một nghìn đồng"),
        (1000000000, "Một tỷ đồng"),
        (1000001, "Một triệu không trăm linh một đồng"),
    ],
)
def test_examples(amount: int, words: str) -> None:
    assert amount_in_words(amount) == words


@pytest.mark.parametrize(
    ("amount", "words"),
    [
        (1, "Một đồng"),
        (5, "Năm đồng"),
        (10, "Mười đồng"),
        (14, "Mười bốn đồng"),
        (15, "Mười lăm đồng"),
        (20, "Hai mươi đồng"),
        (25, "Hai mươi lăm đồng"),
        (44, "Bốn mươi tư đồng"),
        (100, "Một trăm đồng"),
        (101, "Một trăm linh một đồng"),
        (105, "Một trăm linh năm đồng"),
        (110, "Một trăm mười đồng"),
        (111, "Một trăm mười một đồng"),
        (1000, "Một nghìn đồng"),
        (1001, "Một nghìn không trăm linh một đồng"),
        (1005, "Một nghìn không trăm linh năm đồng"),
        (1010, "Một nghìn không trăm mười đồng"),
        (1050, "Một nghìn không trăm năm mươi đồng"),
        (1100, "Một nghìn một trăm đồng"),
        (10**9 + 5, "Một tỷ không trăm linh năm đồng"),
        (10**12, "Một nghìn tỷ đồng"),
        (10**12 + 5, "Một nghìn tỷ không trăm linh năm đồng"),
        (2005 * 10**9, "Hai nghìn không trăm linh năm tỷ đồng"),
        (
            999_999_999_999_999,
            "Chín trăm chín mươi chín nghìn chín trăm chín mươi chín tỷ "
            "chín trăm chín mươi chín triệu chín trăm chín mươi chín nghìn "
            "chín trăm chín mươi chín đồng",
        ),
    ],
)
def test_edge_cases(amount: int, words: str) -> None:
    assert amount_in_words(amount) == words


@pytest.mark.parametrize("amount", [-1, -15000, MAX_AMOUNT + 1, 10**18])
def test_out_of_range_amounts_are_refused(amount: int) -> None:
    with pytest.raises(ValueError):
        amount_in_words(amount)


@given(st.integers(min_value=0, max_value=MAX_AMOUNT))
def test_words_are_well_formed(amount: int) -> None:
    words = amount_in_words(amount)
    # "mươi" is only used for tens of 2 and more, where 1, 4 and 5 read mốt, tư, lăm.
    assert not re.search(r"mươi (một|bốn|năm)\b", words)
    assert "mười năm" not in words
    assert "  " not in words
    assert words == words.strip()
    assert words[0].isupper() and words[1:] == words[1:].lower()
    assert words.endswith(" đồng")
    assert "ngàn" not in words


def test_small_amounts_read_distinctly() -> None:
    readings = {amount_in_words(n) for n in range(10_000)}
    assert len(readings) == 10_000


@pytest.mark.parametrize(
    ("amount", "figures"),
    [
        (0, "0 đồng"),
        (500, "500 đồng"),
        (135000, "135.000 đồng"),
        (1200000, "1.200.000 đồng"),
        (10**9, "1.000.000.000 đồng"),
    ],
)
def test_format_vnd(amount: int, figures: str) -> None:
    assert format_vnd(amount) == figures


def test_format_vnd_refuses_negative() -> None:
    with pytest.raises(ValueError):
        format_vnd(-1)
