"""Amounts of đồng as a Vietnamese payment request writes them: in figures and in words.

A payment request (like an e-invoice under Nghị định 123/2020/NĐ-CP) states the amount twice,
"135.000 đồng" and "bằng chữ: Một trăm ba mươi lăm nghìn đồng", so a citizen can check one
against the other. The words follow the standard reading: groups of three digits; "mười" for
10-19 and "mươi" from 20; "mốt", "tư", "lăm" for 1, 4, 5 after "mươi"; "linh" for a zero
tens digit; "không trăm" for a group below 100 that follows a higher one; all-zero groups
skipped.
"""

from __future__ import annotations

MAX_AMOUNT = 10**15 - 1  # "chín trăm ... nghìn tỷ ..."; a payment never comes near it

_DIGITS = ("không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín")
_SCALES = ("", "nghìn", "triệu")  # below a tỷ; the count of tỷ is itself read as a number
_BILLION = 10**9


def _check(amount: int, maximum: int | None = MAX_AMOUNT) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError(f"amount must be an int, got {amount!r}")
    if amount < 0:
        raise ValueError(f"amount must not be negative, got {amount}")
    if maximum is not None and amount > maximum:
        raise ValueError(f"amount must be at most {maximum}, got {amount}")


def _group(n: int, full: bool) -> list[str]:
    """Words for 1-999; `full` reads the hundreds even when zero ("không trăm linh năm")."""
    hundreds, tens, units = n // 100, n // 10 % 10, n % 10
    words: list[str] = []
    if hundreds or full:
        words += [_DIGITS[hundreds], "trăm"]
    if tens == 0:
        if units and words:
            words += ["linh", _DIGITS[units]]
        elif units:
            words.append(_DIGITS[units])
    elif tens == 1:
        words.append("mười")
        if units:
            words.append("lăm" if units == 5 else _DIGITS[units])
    else:
        words += [_DIGITS[tens], "mươi"]
        if units:
            words.append({1: "mốt", 4: "tư", 5: "lăm"}.get(units, _DIGITS[units]))
    return words


def _below_billion(n: int, leading: bool) -> list[str]:
    """Words for 1 to 999 999 999; `leading` is False when a higher part has been read."""
    groups = [n // 10**6, n // 1000 % 1000, n % 1000]
    words: list[str] = []
    for index, value in enumerate(groups):
        if value == 0:
            continue
        words += _group(value, full=bool(words) or not leading)
        scale = _SCALES[len(groups) - 1 - index]
        if scale:
            words.append(scale)
    return words


def _words(n: int) -> list[str]:
    if n == 0:
        return [_DIGITS[0]]
    billions, rest = divmod(n, _BILLION)
    words: list[str] = []
    if billions:
        # Read recursively: 2 005 × 10⁹ is "hai nghìn không trăm linh năm tỷ", and
        # 10¹² is "một nghìn tỷ".
        words += [*_below_billion(billions, leading=True), "tỷ"]
    if rest:
        words += _below_billion(rest, leading=not words)
    return words


def amount_in_words(amount: int) -> str:
    """The "bằng chữ" line: 135000 → "Một trăm ba mươi lăm nghìn đồng".

    Raises ValueError below 0 or above MAX_AMOUNT.
    """
    _check(amount)
    text = " ".join([*_words(amount), "đồng"])
    return text[0].upper() + text[1:]


def format_vnd(amount: int) -> str:
    """The amount in figures, dot-separated as Vietnamese writes it: 135000 → "135.000 đồng".

    Raises ValueError for a negative amount; there is no upper limit.
    """
    _check(amount, maximum=None)
    return f"{amount:,} đồng".replace(",", ".")
