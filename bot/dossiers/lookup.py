"""Status of one dossier by its code, for a sender who is not linked (as public-service portals
allow with the code on the receipt).

The sender gives the dossier code and the last four digits of the applicant's phone number or
ID number (a business dossier: its representative's). The answer names the status, the
service, the received date and the expected date, nothing else: never a name, an address or a
note. A wrong pair reads exactly like an unknown code.

Guessing is bounded by two limits on *failed* lookups, stored in `lookup_attempts` so every
process shares them: per sender (a keyed digest of the conversation id) and per code (the code
as typed, whether or not it exists, so the limit says nothing about existence). Beyond either
limit the answer is "thử lại sau" and nothing is looked up or recorded. Only failures count: a
citizen checking their own dossier again and again is never stopped, and a success does not
clear earlier failures (a known pair cannot be used to reset the count). The digits are never
stored. Count-then-insert is serialized per sender and per code (PostgreSQL: advisory locks;
SQLite: the unit of work's write lock).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from bot.catalogue.model import Catalogue, get_catalogue
from bot.core.clock import to_local
from bot.core.lifecycles import DOSSIER_FINISHED, DossierStatus
from bot.core.models import Business, Citizen, Dossier, LookupAttempt
from bot.dossiers.submission import STATUS_LABELS
from bot.identity.linking import keyed_digest
from bot.vietnamese.vn import format_date

EXAMPLE = "DLK-261120-00042 5678"

NEED_DIGITS_TEXT = (
    "Để tra cứu hồ sơ {code} khi chưa xác thực tài khoản, Ông/Bà vui lòng gửi mã hồ sơ kèm 4 "
    "số cuối số điện thoại hoặc số định danh của người đứng tên hồ sơ trong cùng một tin nhắn, "
    f"ví dụ: “{EXAMPLE}”. Ông/Bà cũng có thể nhập số định danh cá nhân (12 số) để xác thực "
    "tài khoản và xem đầy đủ hồ sơ của mình."
)
INVALID_CODE_TEXT = (
    "Mã hồ sơ có dạng DLK-261120-00042 (in trên giấy tiếp nhận). Ông/Bà vui lòng gửi mã hồ sơ "
    "kèm 4 số cuối số điện thoại hoặc số định danh của người đứng tên hồ sơ, "
    f"ví dụ: “{EXAMPLE}”."
)
NOT_FOUND_TEXT = (
    "Không tìm thấy hồ sơ mã {code} khớp với 4 số cuối Ông/Bà đã gửi. Ông/Bà vui lòng kiểm tra "
    "lại mã hồ sơ trên giấy tiếp nhận và 4 số cuối số điện thoại hoặc số định danh của người "
    "đứng tên hồ sơ."
)
LIMITED_TEXT = (
    "Để bảo vệ thông tin hồ sơ, tạm thời chưa tra cứu được bằng mã hồ sơ vì đã có nhiều lần tra "
    "cứu không khớp. Ông/Bà vui lòng thử lại sau. Ông/Bà cũng có thể nhập số định danh cá nhân "
    "(12 số) để xác thực tài khoản và xem hồ sơ của mình."
)
# Appended to the "please link first" answer of a sender who asks without a code.
LOOKUP_HINT = (
    "Nếu chỉ cần biết tình trạng một hồ sơ, Ông/Bà có thể gửi mã hồ sơ kèm 4 số cuối số điện "
    f"thoại hoặc số định danh của người đứng tên hồ sơ, ví dụ: “{EXAMPLE}”."
)

_CODE = re.compile(r"[A-Z]{2,5}-[0-9]{6}-[0-9]{5}")
# A dossier code inside a message: not preceded by a letter or digit, not followed by a digit.
_CODE_IN_TEXT = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2,5}-[0-9]{6}-[0-9]{5}(?![0-9])")
# A number as typed, separators included ("0905 123 456", "0905.123.456", "0905-123-456").
_NUMBER = re.compile(r"[0-9]+(?:[ .\-][0-9]+)*")
_FOUR = re.compile(r"[0-9]{4}")
_NOT_BEFORE = re.compile(r"[\w\-/+]")
_NOT_AFTER = re.compile(r"[\w\-/]")


@dataclass(frozen=True)
class LookupLimits:
    """Failed lookups allowed per sender and per code within sliding windows; 0 turns the
    lookup off (every request gets the "thử lại sau" answer)."""

    sender_failures: int = 5
    sender_window: dt.timedelta = dt.timedelta(hours=1)
    code_failures: int = 5
    code_window: dt.timedelta = dt.timedelta(hours=24)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LookupLimits:
        """STATUS_LOOKUP_SENDER_FAILURES (5) per STATUS_LOOKUP_SENDER_WINDOW_MINUTES (60),
        STATUS_LOOKUP_CODE_FAILURES (5) per STATUS_LOOKUP_CODE_WINDOW_HOURS (24)."""
        env = os.environ if env is None else env
        return cls(
            sender_failures=max(0, int(env.get("STATUS_LOOKUP_SENDER_FAILURES", "5"))),
            sender_window=dt.timedelta(
                minutes=max(1, int(env.get("STATUS_LOOKUP_SENDER_WINDOW_MINUTES", "60")))
            ),
            code_failures=max(0, int(env.get("STATUS_LOOKUP_CODE_FAILURES", "5"))),
            code_window=dt.timedelta(
                hours=max(1, int(env.get("STATUS_LOOKUP_CODE_WINDOW_HOURS", "24")))
            ),
        )

    @property
    def longest_window(self) -> dt.timedelta:
        return max(self.sender_window, self.code_window)


class LookupOutcome(str, Enum):
    FOUND = "found"
    NOT_FOUND = "not_found"  # unknown code or wrong digits: one outcome, one text
    LIMITED = "limited"  # over a limit: nothing was looked up
    NEED_DIGITS = "need_digits"  # a code without the four digits: nothing was looked up
    INVALID_CODE = "invalid_code"  # not PREFIX-YYMMDD-NNNNN: nothing was looked up


@dataclass(frozen=True)
class LookupAnswer:
    outcome: LookupOutcome
    text: str


def normalize_code(code: str) -> str | None:
    """The dossier code in upper case, or None when it is not PREFIX-YYMMDD-NNNNN."""
    value = code.strip().upper()
    return value if _CODE.fullmatch(value) else None


def last_four_in(message: str) -> str | None:
    """The four digits a citizen typed next to a dossier code: a number of exactly four ASCII
    digits that is not part of the code or of a longer number (no letter, digit, "-", "/" or
    "+" against it; "0905 123 456" is one number). None when there is none, when two different
    ones are given, or for a button payload ("/intent{…}": values are typed, not sent)."""
    if message.lstrip().startswith("/"):
        return None
    text_ = _CODE_IN_TEXT.sub("§", message)
    found: set[str] = set()
    for match in _NUMBER.finditer(text_):
        before = text_[match.start() - 1] if match.start() > 0 else ""
        after = text_[match.end()] if match.end() < len(text_) else ""
        if _NOT_BEFORE.fullmatch(before) or _NOT_AFTER.fullmatch(after):
            continue
        if _FOUR.fullmatch(match.group()):
            found.add(match.group())
    return found.pop() if len(found) == 1 else None


def _tail(number: str | None) -> str:
    digits = "".join(ch for ch in number or "" if ch in "0123456789")
    return digits[-4:] if len(digits) >= 4 else ""


def last_four_matches(citizen: Citizen | None, digits: str) -> bool:
    """Whether `digits` are the last four of the citizen's phone number or ID number."""
    if citizen is None or not _FOUR.fullmatch(digits):
        return False
    matched = False
    for tail in (_tail(citizen.phone), _tail(citizen.cccd)):
        # Both compared, in constant time: the answer's timing does not say which matched.
        matched |= bool(tail) & hmac.compare_digest(tail, digits)
    return matched


def applicant_of(session: Session, dossier: Dossier) -> Citizen | None:
    """Whose digits open the dossier: a business dossier's representative (the submitting
    citizen when the business names none), else the dossier's citizen."""
    citizen_id = dossier.citizen_id
    if dossier.business_id is not None:
        business = session.get(Business, dossier.business_id)
        if business is not None and business.representative_id is not None:
            citizen_id = business.representative_id
    citizen: Citizen | None = session.get(Citizen, citizen_id) if citizen_id is not None else None
    return citizen


def _lock_key(kind: str, value: str) -> int:
    """A signed 64-bit key for PostgreSQL's advisory locks."""
    data = hashlib.sha256(f"status-lookup:{kind}:{value}".encode()).digest()
    return int.from_bytes(data[:8], "big", signed=True)


def _serialize(session: Session, sender: str, code: str) -> None:
    """Count-then-insert as one step for this sender and this code. PostgreSQL: transaction-
    scoped advisory locks, sender then code (always in this order: no deadlock). SQLite: units
    of work begin with BEGIN IMMEDIATE (bot/core/db.py), so they already run one at a time."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for key in (_lock_key("sender", sender), _lock_key("code", code)):
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


def _failures(session: Session, since: dt.datetime, *where: object) -> int:
    count: int = session.scalar(
        select(func.count())
        .select_from(LookupAttempt)
        .where(LookupAttempt.created_at > since, *where)
    )
    return count


def is_limited(
    session: Session, sender: str, code: str, now: dt.datetime, limits: LookupLimits
) -> bool:
    """Whether the sender (digest) or the code has used up its failed lookups."""
    return (
        _failures(session, now - limits.sender_window, LookupAttempt.sender_digest == sender)
        >= limits.sender_failures
        or _failures(session, now - limits.code_window, LookupAttempt.code == code)
        >= limits.code_failures
    )


def _record_failure(
    session: Session, sender: str, code: str, now: dt.datetime, limits: LookupLimits
) -> None:
    session.execute(
        delete(LookupAttempt).where(LookupAttempt.created_at < now - limits.longest_window)
    )
    session.add(LookupAttempt(sender_digest=sender, code=code, created_at=now))
    session.flush()


def found_text(dossier: Dossier, service_name: str) -> str:
    """Status, service, received and expected dates: the only facts an unlinked sender gets."""
    received = (
        format_date(to_local(dossier.submitted_at).date())
        if dossier.submitted_at is not None and dossier.status != DossierStatus.PREPARED
        else "chưa tiếp nhận"
    )
    expected = (
        format_date(dossier.expected_on)
        if dossier.expected_on is not None and dossier.status not in DOSSIER_FINISHED
        else "—"
    )
    return "\n".join(
        [
            f"Hồ sơ {dossier.code}:",
            f"• Thủ tục: {service_name}",
            f"• Tình trạng: {STATUS_LABELS.get(dossier.status, dossier.status)}",
            f"• Ngày tiếp nhận: {received}",
            f"• Ngày hẹn trả kết quả: {expected}",
        ]
    )


def lookup_by_code(
    session: Session,
    code: str,
    digits: str | None,
    sender_key: str,
    now: dt.datetime,
    limits: LookupLimits,
    catalogue: Catalogue | None = None,
) -> LookupAnswer:
    """The answer to an unlinked sender's "code + last four digits" (`now`: naive UTC).
    `sender_key` is the conversation id; only its keyed digest is stored."""
    normalized = normalize_code(code)
    if normalized is None:
        return LookupAnswer(LookupOutcome.INVALID_CODE, INVALID_CODE_TEXT)
    if digits is None or not _FOUR.fullmatch(digits):
        return LookupAnswer(LookupOutcome.NEED_DIGITS, NEED_DIGITS_TEXT.format(code=normalized))
    sender = keyed_digest("lookup-sender", sender_key)
    _serialize(session, sender, normalized)
    if is_limited(session, sender, normalized, now, limits):
        return LookupAnswer(LookupOutcome.LIMITED, LIMITED_TEXT)
    dossier = session.scalar(select(Dossier).where(Dossier.code == normalized))
    applicant = applicant_of(session, dossier) if dossier is not None else None
    if dossier is None or not last_four_matches(applicant, digits):
        _record_failure(session, sender, normalized, now, limits)
        return LookupAnswer(LookupOutcome.NOT_FOUND, NOT_FOUND_TEXT.format(code=normalized))
    catalogue = catalogue or get_catalogue()
    service = dossier.service_code
    name = catalogue.service(service).name if service in catalogue.codes else service
    return LookupAnswer(LookupOutcome.FOUND, found_text(dossier, name))
