"""Reading a citizen's short replies at a prompt: yes / no / an option number / a correction.

At the consent step the text itself is read (not only the intent), so "1", "đồng ý nộp",
"ok", "sửa địa chỉ" and "tự khai" all work even when the NLU is unsure.
"""

from __future__ import annotations

from enum import Enum

from bot.vietnamese.vn import fold

YES = {
    "1",
    "co",
    "dong y",
    "dong y nop",
    "nop",
    "nop di",
    "ok",
    "oke",
    "yes",
    "u",
    "uh",
    "um",
    "vang",
    "da",
    "da dong y",
    "chac chan",
    "xac nhan",
    "dong y nop ho so",
    "dc",
    "duoc",
    "nop ho so",
    "toi dong y",
    "vang dong y",
    "da vang",
    "dong y a",
    "co a",
}
NO = {
    "2",
    "khong",
    "ko",
    "k",
    "kg",
    "hong",
    "no",
    "thoi",
    "khong nop",
    "huy",
    "huy bo",
    "khong dong y",
    "chua",
    "de sau",
    "nhac lai sau",
    "khong can",
    "thoi khong",
}
SELF_SERVICE = {"3", "tu khai", "tu lam", "khong dung du lieu dien san", "tu khai ho so"}


class Reply(str, Enum):
    YES = "yes"
    NO = "no"
    CORRECT = "correct"
    SELF_SERVICE = "self_service"
    OTHER = "other"


def read_reply(text: str, intent: str | None = None) -> Reply:
    folded = " ".join(fold(text).replace(".", " ").replace("!", " ").split())
    if folded.startswith(("sua", "chinh sua", "thay doi", "cap nhat")):
        return Reply.CORRECT
    if folded in SELF_SERVICE:
        return Reply.SELF_SERVICE
    if folded in YES:
        return Reply.YES
    if folded in NO:
        return Reply.NO
    if intent == "affirm":
        return Reply.YES
    if intent == "deny":
        return Reply.NO
    return Reply.OTHER
